// AdminService: Admin.Stats on the internal port, a snapshot of what this
// replica is doing (streams, subscriptions, top keys, bus state, resolver
// latency per entity). Reads from the hub, the scheduler and the registry;
// owns nothing. Thread-safe; unary callback handler that never blocks for
// long (it walks the hub's shards one at a time).
#ifndef ENTITYSYNC_SERVER_ADMIN_SERVICE_H_
#define ENTITYSYNC_SERVER_ADMIN_SERVICE_H_

#include <string>

#include "adapters/bus/bus.h"
#include "entitysync/v1/entitysync.grpc.pb.h"
#include "server/hub.h"
#include "server/internal_auth.h"
#include "server/resolve_scheduler.h"
#include "server/session/session_registry.h"

namespace entitysync {

class AdminService : public v1::Admin::CallbackService {
 public:
  AdminService(std::string replica, const Hub* hub,
               const ResolveScheduler* scheduler,
               const SessionRegistry* registry, const Bus* bus,
               const InternalAuth* auth = nullptr);

  grpc::ServerUnaryReactor* Stats(grpc::CallbackServerContext* context,
                                  const v1::StatsRequest* request,
                                  v1::StatsResponse* response) override;

 private:
  const std::string replica_;
  const Hub* const hub_;
  const ResolveScheduler* const scheduler_;
  const SessionRegistry* const registry_;
  const Bus* const bus_;
  // Null: no token required.
  const InternalAuth* const auth_;
};

}  // namespace entitysync

#endif  // ENTITYSYNC_SERVER_ADMIN_SERVICE_H_
