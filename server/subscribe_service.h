// SubscribeService: the EntitySync RPC surface on the public port. Subscribe
// is registered as a raw (ByteBuffer) callback method so that sessions write
// pre-serialized updates shared between streams; each stream is a Session.
// Await (the long poll) is a callback unary method; each call is an
// AwaitCall. Thread-safe; owns nothing but copies of the shared dependencies.
#ifndef ENTITYSYNC_SERVER_SUBSCRIBE_SERVICE_H_
#define ENTITYSYNC_SERVER_SUBSCRIBE_SERVICE_H_

#include "entitysync/v1/entitysync.grpc.pb.h"
#include "server/await_call.h"
#include "server/session.h"

namespace entitysync {

class SubscribeService : public v1::EntitySync::WithCallbackMethod_Await<
                             v1::EntitySync::WithRawCallbackMethod_Subscribe<
                                 v1::EntitySync::Service>> {
 public:
  SubscribeService(const SessionDeps& deps, const AwaitDeps& await_deps)
      : deps_(deps), await_deps_(await_deps) {}

  grpc::ServerBidiReactor<grpc::ByteBuffer, grpc::ByteBuffer>* Subscribe(
      grpc::CallbackServerContext* context) override {
    return Session::Start(context, deps_);
  }

  grpc::ServerUnaryReactor* Await(grpc::CallbackServerContext* context,
                                  const v1::AwaitRequest* request,
                                  v1::AwaitResponse* response) override {
    return AwaitCall::Start(context, request, response, await_deps_);
  }

 private:
  const SessionDeps deps_;
  const AwaitDeps await_deps_;
};

}  // namespace entitysync

#endif  // ENTITYSYNC_SERVER_SUBSCRIBE_SERVICE_H_
