// SubscribeService: the EntitySync RPC surface on the public port.
// Subscribe is a raw (ByteBuffer) async method served on the replica's I/O
// threads: each stream is a SubscribeCall (server/transport/grpc) carrying a
// Session, so sessions write pre-serialized updates shared between streams.
// Await (the long poll) is an async unary method on the same threads; each
// call is an AwaitCall. Thread-safe; owns the per-thread listeners and
// copies of the shared dependencies.
#ifndef ENTITYSYNC_SERVER_RPC_SUBSCRIBE_SERVICE_H_
#define ENTITYSYNC_SERVER_RPC_SUBSCRIBE_SERVICE_H_

#include <memory>
#include <utility>
#include <vector>

#include "entitysync/v1/entitysync.grpc.pb.h"
#include "server/rpc/await_call.h"
#include "server/session/session.h"
#include "server/transport/grpc/io_threads.h"
#include "server/transport/grpc/subscribe_call.h"

namespace entitysync {

class SubscribeService
    : public v1::EntitySync::WithAsyncMethod_Await<AsyncSubscribeService> {
 public:
  // Subscribe calls each I/O thread keeps requested: a burst of new streams
  // finds calls waiting while the thread sets up the first ones.
  static constexpr int kRequestedCallsPerThread = 8;

  SubscribeService(const SessionDeps& deps, const AwaitDeps& await_deps)
      : deps_(deps), await_deps_(await_deps) {}

  // Once the server is built (its queues exist) and before its threads run:
  // requests Subscribe calls on every thread of `threads`.
  void Listen(IoThreads* threads) {
    for (size_t i = 0; i < threads->size(); ++i) {
      auto listener = std::make_unique<SubscribeListener>();
      listener->service = this;
      listener->thread = &threads->at(i);
      listener->deps = deps_;
      for (int n = 0; n < kRequestedCallsPerThread; ++n) {
        SubscribeCall::Listen(listener.get());
      }
      listeners_.push_back(std::move(listener));
    }
    // A long poll whose client leaves is let go at once (notify_cancel).
    AwaitCall::Call::ListenOnEach(
        threads,
        [this](auto&&... args) {
          RequestAwait(std::forward<decltype(args)>(args)...);
        },
        [this](AwaitCall::Call* call) { AwaitCall::Start(call, await_deps_); },
        /*notify_cancel=*/true, &await_methods_);
  }

 private:
  const SessionDeps deps_;
  const AwaitDeps await_deps_;
  std::vector<std::unique_ptr<SubscribeListener>> listeners_;
  std::vector<std::unique_ptr<AwaitCall::Call::Method>> await_methods_;
};

}  // namespace entitysync

#endif  // ENTITYSYNC_SERVER_RPC_SUBSCRIBE_SERVICE_H_
