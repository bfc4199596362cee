#include "server/session/session_transport.h"

#include <utility>

namespace entitysync {
namespace {

thread_local DeliveryBatch* open_batch = nullptr;

}  // namespace

DeliveryBatch::DeliveryBatch() : outer_(open_batch) {
  if (outer_ == nullptr) open_batch = this;
}

DeliveryBatch::~DeliveryBatch() {
  if (outer_ != nullptr) return;
  open_batch = nullptr;
  for (Group& group : groups_) {
    group.executor->Post([tasks = std::move(group.tasks)]() mutable {
      for (auto& task : tasks) std::move(task)();
    });
  }
}

bool DeliveryBatch::Add(SessionExecutor* executor,
                        absl::AnyInvocable<void() &&>& task) {
  DeliveryBatch* batch = open_batch;
  // Executors of one session each would only make the scan below long.
  if (batch == nullptr || !executor->Shared()) return false;
  for (Group& group : batch->groups_) {
    if (group.executor == executor) {
      group.tasks.push_back(std::move(task));
      return true;
    }
  }
  batch->groups_.push_back(Group{executor, {}});
  batch->groups_.back().tasks.push_back(std::move(task));
  return true;
}

}  // namespace entitysync
