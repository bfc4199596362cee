#include "server/fanout/notice_dispatcher.h"

#include <optional>
#include <utility>

namespace entitysync {

NoticeDispatcher::NoticeDispatcher(
    size_t capacity, std::function<void(const v1::Notice&)> on_notice,
    std::function<void()> on_overflow)
    : capacity_(capacity),
      on_notice_(std::move(on_notice)),
      on_overflow_(std::move(on_overflow)),
      thread_([this] { Run(); }) {}

NoticeDispatcher::~NoticeDispatcher() {
  {
    absl::MutexLock lock(&mu_);
    stopping_ = true;
  }
  thread_.join();
}

void NoticeDispatcher::Enqueue(const v1::Notice& notice) {
  absl::MutexLock lock(&mu_);
  if (stopping_) return;
  if (queue_.size() >= capacity_) {
    ++dropped_;
    overflowed_ = true;
    return;
  }
  queue_.push_back(notice);
}

uint64_t NoticeDispatcher::dropped() const {
  absl::MutexLock lock(&mu_);
  return dropped_;
}

void NoticeDispatcher::Run() {
  for (;;) {
    std::optional<v1::Notice> notice;
    bool overflowed;
    {
      absl::MutexLock lock(&mu_);
      mu_.Await(absl::Condition(
          +[](NoticeDispatcher* d) ABSL_NO_THREAD_SAFETY_ANALYSIS {
            return d->stopping_ || !d->queue_.empty() || d->overflowed_;
          },
          this));
      if (stopping_) return;
      overflowed = std::exchange(overflowed_, false);
      if (!queue_.empty()) {
        notice = std::move(queue_.front());
        queue_.pop_front();
      }
    }
    if (notice.has_value()) on_notice_(*notice);
    // After a drop, the queued notices still run first; the resync then
    // covers whatever was dropped.
    if (overflowed) on_overflow_();
  }
}

}  // namespace entitysync
