#include "server/session/session_registry.h"

#include <algorithm>
#include <vector>

#include "absl/strings/str_cat.h"
#include "server/session/session.h"

namespace entitysync {

SessionRegistry::SessionRegistry(size_t max_streams, double new_stream_rate,
                                 size_t new_stream_burst)
    : max_streams_(max_streams),
      new_stream_rate_(new_stream_rate),
      new_stream_burst_(std::max(1.0, static_cast<double>(new_stream_burst))),
      rate_tokens_(new_stream_burst_),
      rate_refilled_(std::chrono::steady_clock::now()) {}

grpc::Status SessionRegistry::TryAdd(const std::shared_ptr<Session>& session) {
  absl::MutexLock lock(&mu_);
  if (closed_.has_value()) return *closed_;
  if (draining_) {
    return grpc::Status(grpc::StatusCode::UNAVAILABLE,
                        "this replica is draining; reconnect to another");
  }
  if (sessions_.size() >= max_streams_) {
    return grpc::Status(grpc::StatusCode::RESOURCE_EXHAUSTED,
                        absl::StrCat("this replica serves its limit of ",
                                     max_streams_, " streams; try another"));
  }
  if (new_stream_rate_ > 0) {
    const auto now = std::chrono::steady_clock::now();
    rate_tokens_ = std::min(
        new_stream_burst_,
        rate_tokens_ +
            std::chrono::duration<double>(now - rate_refilled_).count() *
                new_stream_rate_);
    rate_refilled_ = now;
    if (rate_tokens_ < 1) {
      return grpc::Status(
          grpc::StatusCode::RESOURCE_EXHAUSTED,
          absl::StrCat("new streams over ", new_stream_rate_,
                       " per second on this replica; retry later"));
    }
    rate_tokens_ -= 1;
  }
  sessions_.emplace(session.get(), session);
  return grpc::Status::OK;
}

void SessionRegistry::Remove(const Session* session) {
  absl::MutexLock lock(&mu_);
  sessions_.erase(session);
}

std::vector<std::shared_ptr<Session>> SessionRegistry::LiveSessions() const {
  std::vector<std::shared_ptr<Session>> live;
  absl::MutexLock lock(&mu_);
  for (const auto& [ptr, weak] : sessions_) {
    if (auto s = weak.lock()) live.push_back(std::move(s));
  }
  return live;
}

void SessionRegistry::StartDraining(absl::Duration reconnect_within) {
  {
    absl::MutexLock lock(&mu_);
    draining_ = true;
  }
  for (const auto& s : LiveSessions()) s->GoAway(reconnect_within);
}

bool SessionRegistry::WaitUntilEmpty(absl::Time deadline) {
  absl::MutexLock lock(&mu_);
  return mu_.AwaitWithDeadline(
      absl::Condition(
          +[](absl::flat_hash_map<const Session*, std::weak_ptr<Session>>* m) {
            return m->empty();
          },
          &sessions_),
      deadline);
}

void SessionRegistry::CloseAll(const grpc::Status& status) {
  {
    absl::MutexLock lock(&mu_);
    closed_ = status;
  }
  for (const auto& s : LiveSessions()) s->Close(status, /*cancel_write=*/false);
}

size_t SessionRegistry::size() const {
  absl::MutexLock lock(&mu_);
  return sessions_.size();
}

}  // namespace entitysync
