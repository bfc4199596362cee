#include "bench/notify_driver.h"

#include <cstdio>
#include <utility>

#include "absl/time/clock.h"
#include "bench/direct_target.h"
#include "grpcpp/create_channel.h"
#include "grpcpp/security/credentials.h"

namespace entitysync {
namespace bench {

struct NotifyDriver::Call {
  grpc::ClientContext context;
  v1::NotifyRequest request;
  v1::NotifyResponse response;
};

NotifyDriver::NotifyDriver(const std::vector<std::string>& targets,
                           std::string entity, const KeySpace* keys,
                           VersionTable* table, int64_t max_outstanding)
    : entity_(std::move(entity)),
      keys_(keys),
      table_(table),
      max_outstanding_(max_outstanding) {
  for (const std::string& target : targets) {
    stubs_.push_back(v1::Notifier::NewStub(grpc::CreateChannel(
        DirectTarget(target), grpc::InsecureChannelCredentials())));
  }
}

void NotifyDriver::Send(absl::Span<const uint64_t> keys, absl::Time intended) {
  if (outstanding_.load(std::memory_order_relaxed) >= max_outstanding_) {
    errors_.fetch_add(1, std::memory_order_relaxed);
    return;
  }
  outstanding_.fetch_add(1, std::memory_order_relaxed);
  calls_.fetch_add(1, std::memory_order_relaxed);
  changes_.fetch_add(static_cast<int64_t>(keys.size()),
                     std::memory_order_relaxed);
  // Before the call, so that no resolve it causes can miss the change.
  table_->Bump(keys, absl::ToUnixNanos(intended));

  auto* call = new Call;
  call->context.set_deadline(
      absl::ToChronoTime(absl::Now() + absl::Seconds(10)));
  call->request.mutable_changes()->Reserve(static_cast<int>(keys.size()));
  for (uint64_t key : keys) {
    v1::EntityKey* k = call->request.add_changes()->mutable_key();
    k->set_entity(entity_);
    k->set_id(keys_->Id(key));
  }
  v1::Notifier::Stub* stub =
      stubs_[next_target_.fetch_add(1, std::memory_order_relaxed) %
             stubs_.size()]
          .get();
  stub->async()->Notify(
      &call->context, &call->request, &call->response,
      [this, call](grpc::Status status) { Finished(call, status); });
}

void NotifyDriver::Finished(Call* call, const grpc::Status& status) {
  if (!status.ok()) {
    errors_.fetch_add(1, std::memory_order_relaxed);
    if (logged_errors_.fetch_add(1, std::memory_order_relaxed) < 10) {
      std::fprintf(stderr, "Notify failed: code %d: %s\n",
                   static_cast<int>(status.error_code()),
                   status.error_message().c_str());
    }
  }
  delete call;
  outstanding_.fetch_sub(1, std::memory_order_release);
}

bool NotifyDriver::WaitIdle(absl::Duration timeout) const {
  const absl::Time deadline = absl::Now() + timeout;
  while (outstanding() > 0) {
    if (absl::Now() >= deadline) return false;
    absl::SleepFor(absl::Milliseconds(5));
  }
  return true;
}

}  // namespace bench
}  // namespace entitysync
