// HealthService: grpc.health.v1 on the internal port, served on the
// internal I/O thread's completion queue instead of gRPC's built-in service
// (which runs on the callback API; its threads would take turns polling
// with the I/O threads). Same behaviour as the built-in one:
//  - statuses per service name, "" being the server as a whole;
//  - Check answers the current status, NOT_FOUND for a name never set;
//  - Watch sends the current status (SERVICE_UNKNOWN for a name never set)
//    and every change after it (only the newest while a write is in
//    flight), until the client cancels or the server shuts down.
// Thread-safe: SetServingStatus from any thread; calls live on their I/O
// thread. Watches hold shared references to their state; the service
// outlives the server it is registered on.
#ifndef ENTITYSYNC_SERVER_RPC_HEALTH_SERVICE_H_
#define ENTITYSYNC_SERVER_RPC_HEALTH_SERVICE_H_

#include <memory>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/synchronization/mutex.h"
#include "entitysync/health/health.grpc.pb.h"
#include "server/transport/grpc/io_threads.h"
#include "server/transport/grpc/unary_server_call.h"

namespace entitysync {

class HealthService : public grpc::health::v1::Health::AsyncService {
 public:
  using Status = grpc::health::v1::HealthCheckResponse::ServingStatus;
  using CheckCall = UnaryServerCall<grpc::health::v1::HealthCheckRequest,
                                    grpc::health::v1::HealthCheckResponse>;

  HealthService();
  ~HealthService() override;

  void SetServingStatus(const std::string& service, bool serving);
  // Once the server is built: requests Check and Watch calls on every
  // thread of `threads`.
  void Listen(IoThreads* threads);

 private:
  class WatchCall;

  void Check(CheckCall* call);
  // SERVICE_UNKNOWN for a name never set.
  Status StatusOf(const std::string& service) const ABSL_LOCKS_EXCLUDED(mu_);
  void AddWatch(const std::shared_ptr<WatchCall>& watch);
  void RemoveWatch(WatchCall* watch);

  std::vector<std::unique_ptr<CheckCall::Method>> check_methods_;
  std::vector<IoThread*> watch_threads_;

  mutable absl::Mutex mu_;
  absl::flat_hash_map<std::string, Status> statuses_ ABSL_GUARDED_BY(mu_);
  absl::flat_hash_map<WatchCall*, std::shared_ptr<WatchCall>> watches_
      ABSL_GUARDED_BY(mu_);
};

}  // namespace entitysync

#endif  // ENTITYSYNC_SERVER_RPC_HEALTH_SERVICE_H_
