// IoThreads: the replica's I/O threads for gRPC's async API. Each IoThread
// owns one completion queue that only it polls, and the calls started on it;
// every completion runs on that thread, so a call's state needs no lock and a
// completion never hands the poller to another thread (the callback API of
// gRPC 1.51 does, on every completion; see ARCHITECTURE.md).
//
// Work from another thread (a session with something to write) is handed
// over with Post: tasks queue in the thread's inbox and one wake-up per burst
// (a grpc::Alarm set in the past) tells the thread to run them, in order.
//
// Lifetime: Add* the queues to a ServerBuilder, Start after BuildAndStart,
// Shutdown after grpc::Server::Shutdown (the threads keep polling while the
// server cancels its calls). Tasks posted after Shutdown are dropped.
// Thread-safe: Post and IsCurrent from any thread.
#ifndef ENTITYSYNC_SERVER_TRANSPORT_GRPC_IO_THREADS_H_
#define ENTITYSYNC_SERVER_TRANSPORT_GRPC_IO_THREADS_H_

#include <atomic>
#include <memory>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/functional/any_invocable.h"
#include "absl/functional/function_ref.h"
#include "absl/synchronization/mutex.h"
#include "grpcpp/alarm.h"
#include "grpcpp/completion_queue.h"
#include "grpcpp/server_builder.h"
#include "server/session/session_transport.h"

namespace entitysync {

// Every tag put on an IoThread's queue is an IoTag; the thread calls
// OnComplete with the operation's result. It may delete the tag's owner.
class IoTag {
 public:
  virtual void OnComplete(bool ok) = 0;

 protected:
  ~IoTag() = default;
};

// An IoTag that calls a member function: `IoTagOf<Call, &Call::OnRead>`.
template <typename T, void (T::*Method)(bool)>
class IoTagOf final : public IoTag {
 public:
  explicit IoTagOf(T* owner) : owner_(owner) {}
  void OnComplete(bool ok) override { (owner_->*Method)(ok); }

 private:
  T* const owner_;
};

class IoThread final : public SessionExecutor {
 public:
  explicit IoThread(std::unique_ptr<grpc::ServerCompletionQueue> cq);
  ~IoThread() override;  // Shutdown, if not done yet.

  IoThread(const IoThread&) = delete;
  IoThread& operator=(const IoThread&) = delete;

  // Only this thread may poll it; operations may be started on it here.
  grpc::ServerCompletionQueue* cq() const { return cq_.get(); }
  void Start();
  // Waits (polling, taking posts, up to 10 s) until no call of this thread
  // is alive, then shuts the queue down, drains it and joins the thread. A
  // completion may start another operation of its call (a Finish after a
  // failed write, the next accept), which gRPC forbids once the queue is
  // shut down: so the queue shuts down only when no call is left, after
  // the server's Shutdown has cancelled them all.
  void Shutdown();

  // Held by every call (server or client) that starts operations on this
  // queue, for as long as it may start one.
  class LiveCall {
   public:
    explicit LiveCall(IoThread* thread) : thread_(thread) {
      thread_->live_calls_.fetch_add(1, std::memory_order_relaxed);
    }
    ~LiveCall() { thread_->CallEnded(); }
    LiveCall(const LiveCall&) = delete;
    LiveCall& operator=(const LiveCall&) = delete;

   private:
    IoThread* const thread_;
  };

  // Runs `task` on this thread after the tasks posted before it. From this
  // thread too (then it runs after the current completion).
  void Post(absl::AnyInvocable<void() &&> task) override;
  // Post that says whether the task was taken (false once shut down; the
  // task is then destroyed unrun).
  bool TryPost(absl::AnyInvocable<void() &&> task);
  bool IsCurrent() const override;
  // Runs `start` (which starts operations on cq()) unless the queue is shut
  // down; false then. Client calls start through it: an operation started
  // on a shut-down queue is fatal.
  bool StartOnQueue(absl::FunctionRef<void(grpc::CompletionQueue*)> start);
  // The IoThread running the caller, or null.
  static IoThread* Current();

 private:
  void Run();
  void OnKick(bool ok);
  void CallEnded();

  const std::unique_ptr<grpc::ServerCompletionQueue> cq_;
  std::thread thread_;
  std::thread::id thread_id_;  // set before the thread polls; then const

  absl::Mutex mu_;
  std::vector<absl::AnyInvocable<void() &&>> inbox_ ABSL_GUARDED_BY(mu_);
  // The alarm is set (a wake-up is on its way); reset when it is delivered.
  bool kick_armed_ ABSL_GUARDED_BY(mu_) = false;
  bool shut_down_ ABSL_GUARDED_BY(mu_) = false;
  std::atomic<int> live_calls_{0};
  absl::Mutex quiet_mu_;  // CallEnded signals Shutdown's wait
  absl::CondVar quiet_;
  grpc::Alarm kick_;
  IoTagOf<IoThread, &IoThread::OnKick> kick_tag_{this};
};

class IoThreads {
 public:
  // Adds `count` (>= 1) completion queues to `builder`.
  IoThreads(grpc::ServerBuilder* builder, int count);
  ~IoThreads();

  void Start();
  void Shutdown();
  size_t size() const { return threads_.size(); }
  IoThread& at(size_t i) { return *threads_[i]; }
  // Where a call started by the caller should live: the caller's own
  // thread when it is one of these, else the next in turn.
  IoThread& Pick();

 private:
  std::vector<std::unique_ptr<IoThread>> threads_;
  std::atomic<size_t> next_{0};
};

}  // namespace entitysync

#endif  // ENTITYSYNC_SERVER_TRANSPORT_GRPC_IO_THREADS_H_
