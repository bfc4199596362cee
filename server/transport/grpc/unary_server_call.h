// UnaryServerCall: one call of a unary method on gRPC's async API, served on
// an IoThread.
//
// Listen keeps one call of the method requested on the method's thread;
// each accepted call requests the next, then runs the method's handler on
// that thread. The handler (or whatever it hands the call to) answers with
// Finish exactly once, from any thread: the answer is written on the call's
// own thread. With `notify_cancel`, the call also learns when the client
// cancels or goes away before the answer (AsyncNotifyWhenDone): the hook set
// with OnCancel runs on the call's thread, and the handler must still
// Finish. The call frees itself once answered and, with `notify_cancel`,
// reported done by gRPC; the hook set with OnDone runs just before.
#ifndef ENTITYSYNC_SERVER_TRANSPORT_GRPC_UNARY_SERVER_CALL_H_
#define ENTITYSYNC_SERVER_TRANSPORT_GRPC_UNARY_SERVER_CALL_H_

#include <functional>
#include <memory>
#include <utility>
#include <vector>

#include "absl/functional/any_invocable.h"
#include "grpcpp/completion_queue.h"
#include "grpcpp/server_context.h"
#include "grpcpp/support/async_unary_call.h"
#include "server/transport/grpc/io_threads.h"

namespace entitysync {

template <typename Request, typename Response>
class UnaryServerCall {
 public:
  struct Method {
    // The service's Request<Method> function.
    std::function<void(grpc::ServerContext*, Request*,
                       grpc::ServerAsyncResponseWriter<Response>*,
                       grpc::CompletionQueue*, grpc::ServerCompletionQueue*,
                       void*)>
        request;
    std::function<void(UnaryServerCall*)> handle;
    bool notify_cancel = false;
    IoThread* thread = nullptr;
  };

  // Requests one call on `method->thread` (which `method` outlives).
  static void Listen(const Method* method) {
    auto* call = new UnaryServerCall(method);
    if (method->notify_cancel) {
      call->context_.AsyncNotifyWhenDone(&call->done_tag_);
    }
    method->request(&call->context_, &call->request_, &call->writer_,
                    method->thread->cq(), method->thread->cq(),
                    &call->accepted_tag_);
  }

  // Serves the method on every thread of `threads`: one Method per thread,
  // kept in `methods` (which must outlive the server's calls), each with a
  // call requested.
  static void ListenOnEach(IoThreads* threads,
                           decltype(Method::request) request,
                           std::function<void(UnaryServerCall*)> handle,
                           bool notify_cancel,
                           std::vector<std::unique_ptr<Method>>* methods) {
    for (size_t i = 0; i < threads->size(); ++i) {
      auto method = std::make_unique<Method>();
      method->request = request;
      method->handle = handle;
      method->notify_cancel = notify_cancel;
      method->thread = &threads->at(i);
      Listen(method.get());
      methods->push_back(std::move(method));
    }
  }

  UnaryServerCall(const UnaryServerCall&) = delete;
  UnaryServerCall& operator=(const UnaryServerCall&) = delete;

  grpc::ServerContext& context() { return context_; }
  const Request& request() const { return request_; }
  // Filled before Finish(OK).
  Response* response() { return &response_; }
  IoThread* thread() const { return method_->thread; }
  // Hooks, set by the handler on the call's thread before it returns.
  void OnCancel(absl::AnyInvocable<void() &&> hook) {
    on_cancel_ = std::move(hook);
  }
  void OnDone(absl::AnyInvocable<void() &&> hook) {
    on_done_ = std::move(hook);
  }

  void Finish(grpc::Status status) {
    if (method_->thread->IsCurrent()) {
      FinishHere(std::move(status));
      return;
    }
    const bool posted =
        method_->thread->TryPost([this, status = std::move(status)]() mutable {
          FinishHere(std::move(status));
        });
    // The thread shuts down only once no call is alive, so this call's
    // notices have all been delivered: nothing is pending here.
    if (!posted) Destroy();
  }

 private:
  explicit UnaryServerCall(const Method* method)
      : method_(method), live_(method->thread) {}
  ~UnaryServerCall() = default;

  void OnAccepted(bool ok) {
    if (!ok) {
      delete this;  // shutting down; the call never started
      return;
    }
    Listen(method_);
    method_->handle(this);
  }
  void FinishHere(const grpc::Status& status) {
    const bool started =
        method_->thread->StartOnQueue([&](grpc::CompletionQueue*) {
          writer_.Finish(response_, status, &finish_tag_);
        });
    // The queue is shut down (its server long gone): nothing to answer.
    if (!started) OnFinished(false);
  }
  void OnFinished(bool) {
    finished_ = true;
    MaybeDelete();
  }
  void OnCallDone(bool) {
    done_ = true;
    if (!finished_ && context_.IsCancelled() && on_cancel_) {
      std::move(on_cancel_)();
    }
    MaybeDelete();
  }
  void MaybeDelete() {
    if (finished_ && (done_ || !method_->notify_cancel)) Destroy();
  }
  void Destroy() {
    if (on_done_) std::move(on_done_)();
    delete this;
  }

  const Method* const method_;
  // Released last, once nothing of the call can start an operation.
  IoThread::LiveCall live_;
  grpc::ServerContext context_;
  Request request_;
  Response response_;
  grpc::ServerAsyncResponseWriter<Response> writer_{&context_};
  bool finished_ = false;
  bool done_ = false;
  absl::AnyInvocable<void() &&> on_cancel_;
  absl::AnyInvocable<void() &&> on_done_;
  IoTagOf<UnaryServerCall, &UnaryServerCall::OnAccepted> accepted_tag_{this};
  IoTagOf<UnaryServerCall, &UnaryServerCall::OnFinished> finish_tag_{this};
  IoTagOf<UnaryServerCall, &UnaryServerCall::OnCallDone> done_tag_{this};
};

}  // namespace entitysync

#endif  // ENTITYSYNC_SERVER_TRANSPORT_GRPC_UNARY_SERVER_CALL_H_
