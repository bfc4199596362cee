#include "adapters/gateway/gateway_state.h"

#include "absl/random/random.h"
#include "absl/strings/match.h"

namespace entitysync {
namespace gateway {

absl::Duration GatewayOptions::SpreadConnectionAge() const {
  absl::BitGen random;
  return max_connection_age * absl::Uniform(random, 0.9, 1.1);
}

bool ConnectionRegistry::TryAdd(
    const std::shared_ptr<GatewayConnection>& connection) {
  absl::MutexLock lock(&mu_);
  if (stopping_ || connections_.size() >= max_connections_) return false;
  connections_.emplace(connection.get(), connection);
  return true;
}

void ConnectionRegistry::Remove(GatewayConnection* connection) {
  absl::MutexLock lock(&mu_);
  connections_.erase(connection);
}

void ConnectionRegistry::ShutdownAll() {
  std::vector<std::shared_ptr<GatewayConnection>> open;
  {
    absl::MutexLock lock(&mu_);
    stopping_ = true;
    for (const auto& [raw, weak] : connections_) {
      if (auto connection = weak.lock()) open.push_back(std::move(connection));
    }
  }
  // Shutdown only posts work to the connection's strand; no lock needed.
  for (const auto& connection : open) connection->Shutdown();
}

void ConnectionRegistry::AbortAll() {
  std::vector<std::shared_ptr<GatewayConnection>> open;
  {
    absl::MutexLock lock(&mu_);
    for (const auto& [raw, weak] : connections_) {
      if (auto connection = weak.lock()) open.push_back(std::move(connection));
    }
  }
  for (const auto& connection : open) connection->Abort();
}

size_t ConnectionRegistry::size() const {
  absl::MutexLock lock(&mu_);
  return connections_.size();
}

bool GatewayState::OriginAllowed(absl::string_view origin,
                                 absl::string_view host) const {
  if (origin.empty()) return true;
  for (const std::string& allowed : options.allowed_origins) {
    if (allowed == "*" || absl::EqualsIgnoreCase(allowed, origin)) return true;
  }
  // The gateway's own pages: the origin names the host the browser reached.
  for (absl::string_view scheme : {"http://", "https://"}) {
    if (absl::StartsWithIgnoreCase(origin, scheme) &&
        absl::EqualsIgnoreCase(origin.substr(scheme.size()), host)) {
      return true;
    }
  }
  return false;
}

}  // namespace gateway
}  // namespace entitysync
