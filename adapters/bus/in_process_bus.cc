#include "adapters/bus/in_process_bus.h"

#include <utility>

#include "absl/strings/str_cat.h"

namespace entitysync {

absl::Status InProcessBus::Start(BusHandlers handlers) {
  absl::WriterMutexLock lock(&handlers_mu_);
  if (running_) return absl::FailedPreconditionError("bus already started");
  handlers_ = std::move(handlers);
  running_ = true;
  if (handlers_.on_state) handlers_.on_state(BusState::kConnected);
  return absl::OkStatus();
}

std::string InProcessBus::InterestKey(const std::string& entity,
                                      const std::string& id) {
  return absl::StrCat(entity, "/", id);
}

absl::Status InProcessBus::Publish(const v1::Notice& notice) {
  bool interested;
  {
    absl::MutexLock lock(&interest_mu_);
    interested = interest_.contains(
                     InterestKey(notice.key().entity(), notice.key().id())) ||
                 interest_.contains(InterestKey(notice.key().entity(), "*"));
  }
  absl::ReaderMutexLock lock(&handlers_mu_);
  if (!running_) return absl::UnavailableError("bus is stopped");
  if (interested && handlers_.on_notice) handlers_.on_notice(notice);
  return absl::OkStatus();
}

void InProcessBus::AddInterest(const std::string& entity,
                               const std::string& id) {
  absl::MutexLock lock(&interest_mu_);
  ++interest_[InterestKey(entity, id)];
}

void InProcessBus::RemoveInterest(const std::string& entity,
                                  const std::string& id) {
  absl::MutexLock lock(&interest_mu_);
  auto it = interest_.find(InterestKey(entity, id));
  if (it != interest_.end() && --it->second <= 0) interest_.erase(it);
}

void InProcessBus::Stop() {
  absl::WriterMutexLock lock(&handlers_mu_);
  running_ = false;
  handlers_ = BusHandlers{};
}

}  // namespace entitysync
