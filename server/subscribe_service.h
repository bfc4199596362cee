// SubscribeService: the EntitySync RPC surface on the public port.
// Subscribe is a raw (ByteBuffer) async method served on the replica's I/O
// threads: each stream is a SubscribeCall (server/transport/grpc) carrying a
// Session, so sessions write pre-serialized updates shared between streams.
// Await (the long poll) is a callback unary method; each call is an
// AwaitCall. Thread-safe; owns the per-thread listeners and copies of the
// shared dependencies.
#ifndef ENTITYSYNC_SERVER_SUBSCRIBE_SERVICE_H_
#define ENTITYSYNC_SERVER_SUBSCRIBE_SERVICE_H_

#include <memory>
#include <vector>

#include "entitysync/v1/entitysync.grpc.pb.h"
#include "server/await_call.h"
#include "server/session/session.h"
#include "server/transport/grpc/io_threads.h"
#include "server/transport/grpc/subscribe_call.h"

namespace entitysync {

class SubscribeService
    : public v1::EntitySync::WithCallbackMethod_Await<AsyncSubscribeService> {
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
  }

  grpc::ServerUnaryReactor* Await(grpc::CallbackServerContext* context,
                                  const v1::AwaitRequest* request,
                                  v1::AwaitResponse* response) override {
    return AwaitCall::Start(context, request, response, await_deps_);
  }

 private:
  const SessionDeps deps_;
  const AwaitDeps await_deps_;
  std::vector<std::unique_ptr<SubscribeListener>> listeners_;
};

}  // namespace entitysync

#endif  // ENTITYSYNC_SERVER_SUBSCRIBE_SERVICE_H_
