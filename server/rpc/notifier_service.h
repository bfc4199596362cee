// NotifierService: the Notify RPC, served on the internal port only.
//
// A batch is validated as a whole (INVALID_ARGUMENT names the first bad entry
// and nothing is published), then each change becomes a Notice published on
// the bus, or handed straight to this replica with local_only. UNAVAILABLE
// when the bus cannot take a notice: OK is never returned for a notice that
// was not published. Changes of cluster_once entities are resolved first (by
// the ClusterOnceResolver; the call finishes once they are published).
// Thread-safe. Served on gRPC's async API (Listen: one call requested per
// I/O thread); the handler runs on the call's thread and never blocks.
#ifndef ENTITYSYNC_SERVER_RPC_NOTIFIER_SERVICE_H_
#define ENTITYSYNC_SERVER_RPC_NOTIFIER_SERVICE_H_

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "adapters/bus/bus.h"
#include "entitysync/v1/entitysync.grpc.pb.h"
#include "server/core/limits.h"
#include "server/core/server_counters.h"
#include "server/resolve/cluster_once_resolver.h"
#include "server/resolve/entity_table.h"
#include "server/rpc/internal_auth.h"
#include "server/transport/grpc/io_threads.h"
#include "server/transport/grpc/unary_server_call.h"

namespace entitysync {

// INVALID_ARGUMENT naming the first bad change ("changes[2]: key.id is
// empty"). Exposed for tests.
absl::Status ValidateNotify(const v1::NotifyRequest& request,
                            const Limits& limits, const EntityTable& table);

class NotifierService : public v1::Notifier::AsyncService {
 public:
  using LocalHandler = std::function<void(const v1::Notice&)>;
  using Call = UnaryServerCall<v1::NotifyRequest, v1::NotifyResponse>;

  // `counters` (notices published, Notify latency), `cluster` (no
  // cluster_once entities) and `auth` (no token required) may be null.
  NotifierService(const Limits* limits, const EntityTable* table, Bus* bus,
                  std::string origin, LocalHandler local,
                  ServerCounters* counters = nullptr,
                  ClusterOnceResolver* cluster = nullptr,
                  const InternalAuth* auth = nullptr);

  // Once the server is built: requests Notify calls on every thread.
  void Listen(IoThreads* threads);
  // One call; answers it exactly once (here or later, from the bus or the
  // cluster_once resolve).
  void Handle(Call* call);

 private:
  // Publishes (or hands to this replica) every notice in order; finishes
  // the call. OK only when every one was published. `plain`: the notices
  // before cluster_once resolved them, published instead of one whose rows
  // the bus refuses as too large.
  void Publish(Call* call, const std::vector<v1::Notice>& notices,
               bool local_only, absl::Time started,
               const std::vector<v1::Notice>* plain = nullptr);

  const Limits* const limits_;
  const EntityTable* const table_;
  Bus* const bus_;
  const std::string origin_;
  const LocalHandler local_;
  ServerCounters* const counters_;
  ClusterOnceResolver* const cluster_;
  const InternalAuth* const auth_;
  std::vector<std::unique_ptr<Call::Method>> methods_;
};

}  // namespace entitysync

#endif  // ENTITYSYNC_SERVER_RPC_NOTIFIER_SERVICE_H_
