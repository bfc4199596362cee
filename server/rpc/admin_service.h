// AdminService: Admin.Stats on the internal port, a snapshot of what this
// replica is doing (streams, subscriptions, top keys, bus state, resolver
// latency per entity). Reads from the hub, the scheduler and the registry;
// owns nothing. Thread-safe; served on gRPC's async API, the handler runs on
// the call's I/O thread and never blocks for long (it walks the hub's shards
// one at a time).
#ifndef ENTITYSYNC_SERVER_RPC_ADMIN_SERVICE_H_
#define ENTITYSYNC_SERVER_RPC_ADMIN_SERVICE_H_

#include <memory>
#include <string>
#include <vector>

#include "adapters/bus/bus.h"
#include "entitysync/v1/entitysync.grpc.pb.h"
#include "server/fanout/hub.h"
#include "server/resolve/resolve_scheduler.h"
#include "server/rpc/internal_auth.h"
#include "server/session/session_registry.h"
#include "server/transport/grpc/io_threads.h"
#include "server/transport/grpc/unary_server_call.h"

namespace entitysync {

class AdminService : public v1::Admin::AsyncService {
 public:
  using Call = UnaryServerCall<v1::StatsRequest, v1::StatsResponse>;

  AdminService(std::string replica, const Hub* hub,
               const ResolveScheduler* scheduler,
               const SessionRegistry* registry, const Bus* bus,
               const InternalAuth* auth = nullptr);

  // Once the server is built: requests Stats calls on every thread.
  void Listen(IoThreads* threads);
  void Stats(Call* call);

 private:
  const std::string replica_;
  const Hub* const hub_;
  const ResolveScheduler* const scheduler_;
  const SessionRegistry* const registry_;
  const Bus* const bus_;
  // Null: no token required.
  const InternalAuth* const auth_;
  std::vector<std::unique_ptr<Call::Method>> methods_;
};

}  // namespace entitysync

#endif  // ENTITYSYNC_SERVER_RPC_ADMIN_SERVICE_H_
