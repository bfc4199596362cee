#include "examples/items/items_resolver.h"

#include <grpcpp/alarm.h>

#include <chrono>

#include "common/grpc_status.h"
#include "examples/items/items_resolve.h"

namespace entitysync::examples {

grpc::ServerUnaryReactor* ItemsResolver::Resolve(
    grpc::CallbackServerContext* context,
    const entitysync::v1::ResolveRequest* request,
    entitysync::v1::ResolveResponse* response) {
  calls_.fetch_add(1, std::memory_order_relaxed);
  // The store call is a local SQLite read; in WAL mode it does not wait for
  // writers, so it is short enough to run in the reaction.
  absl::Status resolved = ResolveItems(*store_, *request, response);
  if (resolved.ok()) {
    keys_resolved_.fetch_add(request->keys_size(), std::memory_order_relaxed);
  }
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  grpc::Status status = ToGrpcStatus(resolved);
  if (options_.delay <= absl::ZeroDuration()) {
    reactor->Finish(status);
    return reactor;
  }
  // An alarm instead of a sleep: a sleeping reaction would hold one of
  // gRPC's callback threads and serialize concurrent slow calls. The alarm
  // keeps itself alive until its callback returns, so deleting it there is
  // safe.
  auto* alarm = new grpc::Alarm;
  alarm->Set(std::chrono::system_clock::now() +
                 absl::ToChronoNanoseconds(options_.delay),
             [alarm, reactor, status](bool /*fired*/) {
               reactor->Finish(status);
               delete alarm;
             });
  return reactor;
}

}  // namespace entitysync::examples
