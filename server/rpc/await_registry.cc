#include "server/rpc/await_registry.h"

#include "absl/strings/str_cat.h"

namespace entitysync {

grpc::Status AwaitRegistry::TryAdd(const std::shared_ptr<AwaitCall>& call) {
  absl::MutexLock lock(&mu_);
  if (!accepting_) return refusal_;
  if (calls_.size() >= max_awaits_) {
    return grpc::Status(
        grpc::StatusCode::RESOURCE_EXHAUSTED,
        absl::StrCat("this replica has ", calls_.size(),
                     " Await calls waiting, its limit (--max_awaits); retry "
                     "later or elsewhere"));
  }
  calls_.emplace(call.get(), call);
  return grpc::Status::OK;
}

void AwaitRegistry::Remove(const AwaitCall* call) {
  absl::MutexLock lock(&mu_);
  calls_.erase(call);
}

std::vector<std::shared_ptr<AwaitCall>> AwaitRegistry::StopAccepting(
    const grpc::Status& refusal) {
  std::vector<std::shared_ptr<AwaitCall>> live;
  absl::MutexLock lock(&mu_);
  if (accepting_) {
    accepting_ = false;
    refusal_ = refusal;
  }
  for (const auto& [ptr, weak] : calls_) {
    if (auto call = weak.lock()) live.push_back(std::move(call));
  }
  return live;
}

size_t AwaitRegistry::size() const {
  absl::MutexLock lock(&mu_);
  return calls_.size();
}

}  // namespace entitysync
