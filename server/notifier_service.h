// NotifierService: the Notify RPC, served on the internal port only.
//
// A batch is validated as a whole (INVALID_ARGUMENT names the first bad entry
// and nothing is published), then each change becomes a Notice published on
// the bus, or handed straight to this replica with local_only. UNAVAILABLE
// when the bus cannot take a notice: OK is never returned for a notice that
// was not published. Thread-safe; unary callback handler, never blocks.
#ifndef ENTITYSYNC_SERVER_NOTIFIER_SERVICE_H_
#define ENTITYSYNC_SERVER_NOTIFIER_SERVICE_H_

#include <functional>
#include <string>

#include "absl/status/status.h"
#include "adapters/bus/bus.h"
#include "entitysync/v1/entitysync.grpc.pb.h"
#include "server/entity_table.h"
#include "server/limits.h"
#include "server/server_counters.h"

namespace entitysync {

// INVALID_ARGUMENT naming the first bad change ("changes[2]: key.id is
// empty"). Exposed for tests.
absl::Status ValidateNotify(const v1::NotifyRequest& request,
                            const Limits& limits, const EntityTable& table);

class NotifierService : public v1::Notifier::CallbackService {
 public:
  using LocalHandler = std::function<void(const v1::Notice&)>;

  // `counters` (notices published, Notify latency) may be null.
  NotifierService(const Limits* limits, const EntityTable* table, Bus* bus,
                  std::string origin, LocalHandler local,
                  ServerCounters* counters = nullptr);

  grpc::ServerUnaryReactor* Notify(grpc::CallbackServerContext* context,
                                   const v1::NotifyRequest* request,
                                   v1::NotifyResponse* response) override;

 private:
  const Limits* const limits_;
  const EntityTable* const table_;
  Bus* const bus_;
  const std::string origin_;
  const LocalHandler local_;
  ServerCounters* const counters_;
};

}  // namespace entitysync

#endif  // ENTITYSYNC_SERVER_NOTIFIER_SERVICE_H_
