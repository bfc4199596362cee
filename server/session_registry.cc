#include "server/session_registry.h"

#include <vector>

#include "server/session.h"

namespace entitysync {

bool SessionRegistry::TryAdd(const std::shared_ptr<Session>& session) {
  absl::MutexLock lock(&mu_);
  if (sessions_.size() >= max_streams_) return false;
  sessions_.emplace(session.get(), session);
  return true;
}

void SessionRegistry::Remove(const Session* session) {
  absl::MutexLock lock(&mu_);
  sessions_.erase(session);
}

void SessionRegistry::CloseAll(const grpc::Status& status) {
  std::vector<std::shared_ptr<Session>> live;
  {
    absl::MutexLock lock(&mu_);
    for (const auto& [ptr, weak] : sessions_) {
      if (auto s = weak.lock()) live.push_back(std::move(s));
    }
  }
  for (const auto& s : live) s->Close(status, /*cancel_write=*/false);
}

size_t SessionRegistry::size() const {
  absl::MutexLock lock(&mu_);
  return sessions_.size();
}

}  // namespace entitysync
