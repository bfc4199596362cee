#include "server/transport/grpc/io_threads.h"

#include <utility>

#include "absl/time/clock.h"
#include "grpc/support/time.h"

namespace entitysync {
namespace {

thread_local IoThread* current_thread = nullptr;

}  // namespace

IoThread::IoThread(std::unique_ptr<grpc::ServerCompletionQueue> cq)
    : cq_(std::move(cq)) {}

IoThread::~IoThread() { Shutdown(); }

void IoThread::Start() {
  absl::MutexLock lock(&mu_);
  thread_ = std::thread([this] { Run(); });
  thread_id_ = thread_.get_id();
}

void IoThread::Run() {
  {
    // Start wrote thread_id_ under mu_; read it only after taking mu_ once.
    absl::MutexLock lock(&mu_);
  }
  current_thread = this;
  void* tag = nullptr;
  bool ok = false;
  while (cq_->Next(&tag, &ok)) static_cast<IoTag*>(tag)->OnComplete(ok);
  current_thread = nullptr;
}

IoThread* IoThread::Current() { return current_thread; }

bool IoThread::StartOnQueue(
    absl::FunctionRef<void(grpc::CompletionQueue*)> start) {
  absl::MutexLock lock(&mu_);
  if (shut_down_) return false;
  start(cq_.get());
  return true;
}

void IoThread::Post(absl::AnyInvocable<void() &&> task) {
  TryPost(std::move(task));
}

bool IoThread::TryPost(absl::AnyInvocable<void() &&> task) {
  absl::MutexLock lock(&mu_);
  if (shut_down_) return false;
  inbox_.push_back(std::move(task));
  if (kick_armed_) return true;
  kick_armed_ = true;
  // An alarm in the past completes at once: one wake-up for the whole burst
  // queued before the thread takes the inbox. Set under mu_ so that the
  // queue cannot be shut down in between.
  kick_.Set(cq_.get(), gpr_time_0(GPR_CLOCK_MONOTONIC), &kick_tag_);
  return true;
}

void IoThread::OnKick(bool) {
  std::vector<absl::AnyInvocable<void() &&>> tasks;
  {
    absl::MutexLock lock(&mu_);
    kick_armed_ = false;
    tasks.swap(inbox_);
  }
  for (auto& task : tasks) std::move(task)();
}

bool IoThread::IsCurrent() const {
  return std::this_thread::get_id() == thread_id_;
}

void IoThread::CallEnded() {
  if (live_calls_.fetch_sub(1, std::memory_order_acq_rel) == 1) {
    absl::MutexLock lock(&quiet_mu_);
    quiet_.SignalAll();
  }
}

void IoThread::Shutdown() {
  {
    absl::MutexLock lock(&mu_);
    if (shut_down_) return;
  }
  if (thread_.joinable()) {
    const absl::Time deadline = absl::Now() + absl::Seconds(10);
    absl::MutexLock lock(&quiet_mu_);
    while (live_calls_.load(std::memory_order_acquire) > 0) {
      if (quiet_.WaitWithDeadline(&quiet_mu_, deadline)) break;
    }
  }
  {
    absl::MutexLock lock(&mu_);
    if (shut_down_) return;
    shut_down_ = true;
  }
  cq_->Shutdown();
  if (thread_.joinable()) {
    thread_.join();
  } else {
    // Never started: drain here so the queue can be destroyed.
    void* tag = nullptr;
    bool ok = false;
    while (cq_->Next(&tag, &ok)) static_cast<IoTag*>(tag)->OnComplete(ok);
  }
  // Tasks left behind (their calls are gone) are dropped here.
  std::vector<absl::AnyInvocable<void() &&>> dropped;
  absl::MutexLock lock(&mu_);
  dropped.swap(inbox_);
}

IoThreads::IoThreads(grpc::ServerBuilder* builder, int count) {
  if (count < 1) count = 1;
  for (int i = 0; i < count; ++i) {
    threads_.push_back(
        std::make_unique<IoThread>(builder->AddCompletionQueue()));
  }
}

IoThreads::~IoThreads() { Shutdown(); }

IoThread& IoThreads::Pick() {
  IoThread* current = IoThread::Current();
  for (const auto& thread : threads_) {
    if (thread.get() == current) return *current;
  }
  return *threads_[next_.fetch_add(1, std::memory_order_relaxed) %
                   threads_.size()];
}

void IoThreads::Start() {
  for (auto& thread : threads_) thread->Start();
}

void IoThreads::Shutdown() {
  for (auto& thread : threads_) thread->Shutdown();
}

}  // namespace entitysync
