// A small thread pool with delayed tasks: where the server runs work that must
// not run inside a gRPC reaction or a bus callback (resolve batching, retries
// with backoff).
//
// Tasks run in FIFO order of their due time on one of `threads` workers.
// Callers bound what they post (the scheduler posts at most one flush per
// entity and one retry per key), so the queue needs no limit of its own.
// Thread-safe. The destructor drops tasks not yet due and joins the workers.
#ifndef ENTITYSYNC_SERVER_CORE_EXECUTOR_H_
#define ENTITYSYNC_SERVER_CORE_EXECUTOR_H_

#include <cstdint>
#include <functional>
#include <queue>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"

namespace entitysync {

class Executor {
 public:
  explicit Executor(int threads);
  ~Executor();
  Executor(const Executor&) = delete;
  Executor& operator=(const Executor&) = delete;

  void Post(std::function<void()> task);
  void PostAfter(absl::Duration delay, std::function<void()> task);

 private:
  struct Task {
    absl::Time due;
    uint64_t seq;
    std::function<void()> fn;
    bool operator>(const Task& other) const {
      return due != other.due ? due > other.due : seq > other.seq;
    }
  };

  void WorkerLoop();

  absl::Mutex mu_;
  std::priority_queue<Task, std::vector<Task>, std::greater<Task>> tasks_
      ABSL_GUARDED_BY(mu_);
  uint64_t next_seq_ ABSL_GUARDED_BY(mu_) = 0;
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;

  std::vector<std::thread> workers_;
};

}  // namespace entitysync

#endif  // ENTITYSYNC_SERVER_CORE_EXECUTOR_H_
