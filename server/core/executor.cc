#include "server/core/executor.h"

#include <utility>

#include "absl/time/clock.h"

namespace entitysync {

Executor::Executor(int threads) {
  for (int i = 0; i < threads; ++i) {
    workers_.emplace_back([this] { WorkerLoop(); });
  }
}

Executor::~Executor() {
  {
    absl::MutexLock lock(&mu_);
    stopping_ = true;
  }
  for (std::thread& t : workers_) t.join();
}

void Executor::Post(std::function<void()> task) {
  PostAfter(absl::ZeroDuration(), std::move(task));
}

void Executor::PostAfter(absl::Duration delay, std::function<void()> task) {
  absl::MutexLock lock(&mu_);
  if (stopping_) return;
  tasks_.push(Task{absl::Now() + delay, next_seq_++, std::move(task)});
}

void Executor::WorkerLoop() {
  for (;;) {
    std::function<void()> fn;
    {
      absl::MutexLock lock(&mu_);
      for (;;) {
        if (stopping_) return;
        if (!tasks_.empty() && tasks_.top().due <= absl::Now()) break;
        if (tasks_.empty()) {
          mu_.AwaitWithTimeout(
              absl::Condition(
                  +[](Executor* e) ABSL_NO_THREAD_SAFETY_ANALYSIS {
                    return e->stopping_ || !e->tasks_.empty();
                  },
                  this),
              absl::Seconds(1));
        } else {
          const absl::Time due = tasks_.top().due;
          // Wake early if an earlier task arrives or we stop.
          const size_t size = tasks_.size();
          struct Args {
            Executor* e;
            size_t size;
          } args{this, size};
          mu_.AwaitWithDeadline(
              absl::Condition(
                  +[](Args* a) ABSL_NO_THREAD_SAFETY_ANALYSIS {
                    return a->e->stopping_ || a->e->tasks_.size() != a->size;
                  },
                  &args),
              due);
        }
      }
      fn = std::move(const_cast<Task&>(tasks_.top()).fn);
      tasks_.pop();
    }
    fn();
  }
}

}  // namespace entitysync
