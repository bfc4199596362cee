// SubscribeService: the EntitySync RPC surface on the public port. Subscribe
// is registered as a raw (ByteBuffer) callback method so that sessions write
// pre-serialized updates shared between streams. Each stream is a Session.
// Thread-safe; owns nothing but a copy of the shared dependencies.
#ifndef ENTITYSYNC_SERVER_SUBSCRIBE_SERVICE_H_
#define ENTITYSYNC_SERVER_SUBSCRIBE_SERVICE_H_

#include "entitysync/v1/entitysync.grpc.pb.h"
#include "server/session.h"

namespace entitysync {

class SubscribeService : public v1::EntitySync::WithRawCallbackMethod_Subscribe<
                             v1::EntitySync::Service> {
 public:
  explicit SubscribeService(const SessionDeps& deps) : deps_(deps) {}

  grpc::ServerBidiReactor<grpc::ByteBuffer, grpc::ByteBuffer>* Subscribe(
      grpc::CallbackServerContext* context) override {
    return Session::Start(context, deps_);
  }

 private:
  const SessionDeps deps_;
};

}  // namespace entitysync

#endif  // ENTITYSYNC_SERVER_SUBSCRIBE_SERVICE_H_
