// StartUnaryCall: one unary client call on an IoThread's completion queue
// (the async API), so its answer runs on that thread and no callback-API
// thread of gRPC is involved.
//
//   StartUnaryCall<v1::ResolveResponse>(
//       io_threads->Pick(), deadline,
//       [&](grpc::ClientContext* context, grpc::CompletionQueue* cq) {
//         return stub->PrepareAsyncResolve(context, request, cq);
//       },
//       std::move(done));
//
// `done` runs exactly once: on the thread, with the response or the call's
// error, after the call's state (and its channel reference) is freed; or at
// once on the caller's thread with UNAVAILABLE when the thread is shut down
// (the caller is then not an I/O thread; callers hold no lock).
#ifndef ENTITYSYNC_SERVER_TRANSPORT_GRPC_UNARY_CLIENT_CALL_H_
#define ENTITYSYNC_SERVER_TRANSPORT_GRPC_UNARY_CLIENT_CALL_H_

#include <memory>
#include <utility>

#include "absl/functional/any_invocable.h"
#include "absl/functional/function_ref.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "common/grpc_status.h"
#include "grpcpp/client_context.h"
#include "grpcpp/completion_queue.h"
#include "grpcpp/support/async_unary_call.h"
#include "server/transport/grpc/io_threads.h"

namespace entitysync {

template <typename Response>
using UnaryDone = absl::AnyInvocable<void(absl::StatusOr<Response>) &&>;

template <typename Response>
class UnaryClientCall final : public IoTag {
 public:
  using Prepare = absl::FunctionRef<
      std::unique_ptr<grpc::ClientAsyncResponseReader<Response>>(
          grpc::ClientContext*, grpc::CompletionQueue*)>;

  static void Start(IoThread& thread, absl::Time deadline, Prepare prepare,
                    UnaryDone<Response> done) {
    auto* call = new UnaryClientCall(&thread, std::move(done));
    call->context_.set_deadline(absl::ToChronoTime(deadline));
    const bool started = thread.StartOnQueue([&](grpc::CompletionQueue* cq) {
      call->reader_ = prepare(&call->context_, cq);
      call->reader_->StartCall();
      call->reader_->Finish(&call->response_, &call->status_, call);
    });
    if (!started) {
      UnaryDone<Response> refused = std::move(call->done_);
      delete call;
      std::move(refused)(absl::UnavailableError("server is shutting down"));
    }
  }

  void OnComplete(bool) override {
    UnaryDone<Response> done = std::move(done_);
    absl::StatusOr<Response> result =
        status_.ok() ? absl::StatusOr<Response>(std::move(response_))
                     : absl::StatusOr<Response>(FromGrpcStatus(status_));
    // The context holds a channel reference; `done` may let its owner drop
    // the channel, so the call goes first.
    delete this;
    std::move(done)(std::move(result));
  }

 private:
  UnaryClientCall(IoThread* thread, UnaryDone<Response> done)
      : live_(thread), done_(std::move(done)) {}
  ~UnaryClientCall() = default;

  // Released last: the thread's queue outlives the call.
  IoThread::LiveCall live_;
  grpc::ClientContext context_;
  Response response_;
  grpc::Status status_;
  std::unique_ptr<grpc::ClientAsyncResponseReader<Response>> reader_;
  UnaryDone<Response> done_;
};

template <typename Response>
void StartUnaryCall(IoThread& thread, absl::Time deadline,
                    typename UnaryClientCall<Response>::Prepare prepare,
                    UnaryDone<Response> done) {
  UnaryClientCall<Response>::Start(thread, deadline, prepare, std::move(done));
}

}  // namespace entitysync

#endif  // ENTITYSYNC_SERVER_TRANSPORT_GRPC_UNARY_CLIENT_CALL_H_
