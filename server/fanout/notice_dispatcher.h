// NoticeDispatcher: takes notices off bus threads (cnats callbacks must not
// block) and hands them to the scheduler on one thread of its own, in
// arrival order, so per-key order is kept (it matters for notices with
// inline rows and no version).
//
// The queue is bounded. When it is full a notice is dropped and a resync is
// requested instead: the gap is repaired by resolving every served key, never
// lost silently. Thread-safe. The destructor drops what is still queued.
#ifndef ENTITYSYNC_SERVER_FANOUT_NOTICE_DISPATCHER_H_
#define ENTITYSYNC_SERVER_FANOUT_NOTICE_DISPATCHER_H_

#include <cstdint>
#include <deque>
#include <functional>
#include <thread>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "entitysync/v1/bus.pb.h"

namespace entitysync {

class NoticeDispatcher {
 public:
  NoticeDispatcher(size_t capacity,
                   std::function<void(const v1::Notice&)> on_notice,
                   std::function<void()> on_overflow);
  ~NoticeDispatcher();
  NoticeDispatcher(const NoticeDispatcher&) = delete;
  NoticeDispatcher& operator=(const NoticeDispatcher&) = delete;

  // Never blocks.
  void Enqueue(const v1::Notice& notice);
  uint64_t dropped() const;

 private:
  void Run();

  const size_t capacity_;
  const std::function<void(const v1::Notice&)> on_notice_;
  const std::function<void()> on_overflow_;

  mutable absl::Mutex mu_;
  std::deque<v1::Notice> queue_ ABSL_GUARDED_BY(mu_);
  bool overflowed_ ABSL_GUARDED_BY(mu_) = false;
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  uint64_t dropped_ ABSL_GUARDED_BY(mu_) = 0;
  std::thread thread_;
};

}  // namespace entitysync

#endif  // ENTITYSYNC_SERVER_FANOUT_NOTICE_DISPATCHER_H_
