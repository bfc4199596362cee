// EntitySyncServer: one replica, assembled. Owns the bus, hub, scheduler,
// resolver clients and the two gRPC servers (public: EntitySync; internal:
// Notifier, health, reflection). Start it, Wait or Shutdown. Thread-safe.
//
// Shutdown order matters and is explicit: report NOT_SERVING, close every
// stream, stop the gRPC servers (bounded by the grace period), wait for
// resolver calls in flight, stop the bus, then the executor.
#ifndef ENTITYSYNC_SERVER_SERVER_H_
#define ENTITYSYNC_SERVER_SERVER_H_

#include <atomic>
#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "adapters/bus/bus.h"
#include "entitysync/v1/config.pb.h"
#include "grpcpp/server.h"
#include "server/core/executor.h"
#include "server/core/limits.h"
#include "server/core/server_counters.h"
#include "server/core/version_clock.h"
#include "server/fanout/hub.h"
#include "server/fanout/notice_dispatcher.h"
#include "server/resolve/cluster_once_resolver.h"
#include "server/resolve/entity_table.h"
#include "server/resolve/reauthorizer.h"
#include "server/resolve/resolve_scheduler.h"
#include "server/rpc/admin_service.h"
#include "server/rpc/await_registry.h"
#include "server/rpc/health_service.h"
#include "server/rpc/internal_auth.h"
#include "server/rpc/notifier_service.h"
#include "server/session/session.h"
#include "server/session/session_registry.h"
#include "server/transport/grpc/io_threads.h"

namespace entitysync {

struct ServerOptions {
  // Port 0 picks a free port (see public_port()).
  std::string public_address = "127.0.0.1:7070";
  std::string internal_address = "127.0.0.1:7071";
  // Null: plaintext. See common/tls.h (TLS, mutual TLS).
  std::shared_ptr<grpc::ServerCredentials> public_credentials;
  std::shared_ptr<grpc::ServerCredentials> internal_credentials;
  Limits limits;
  // Notify and Admin on the internal port require this token when it has
  // one.
  InternalAuth internal_auth;
  // No entities: open mode (Notify's inline rows pushed as they are).
  v1::ServerConfig config;
  // Null: the in-process bus.
  std::unique_ptr<Bus> bus;
  int executor_threads = 2;
  // Server reflection on the internal port (a sync service: it adds gRPC's
  // sync-server threads, which poll beside the I/O threads).
  bool reflection = false;
  // I/O threads of the public port, each polling its own completion queue
  // (Subscribe streams live on the thread that accepted them). 0: one per
  // core.
  int io_threads = 0;
  SchedulerOptions scheduler;
  // Every subscription's authorization is asked again this often (reason
  // REAUTHORIZE); a denial revokes it. Zero: never.
  absl::Duration reauthorize_interval = absl::Minutes(5);
  // Notices waiting for the scheduler; past it they are dropped and a resync
  // repairs the gap.
  size_t notice_queue_capacity = 100000;

  // Connections (public port). After max_connection_age a connection is sent
  // an HTTP/2 GOAWAY and closed after the grace: long-lived streams then
  // reconnect, which rebalances load after scale-out.
  absl::Duration max_connection_age = absl::Minutes(30);
  absl::Duration max_connection_age_grace = absl::Seconds(30);
  // The server pings idle connections to find dead clients, and lets
  // clients ping it no more often than min_client_ping_interval.
  absl::Duration keepalive_time = absl::Seconds(60);
  absl::Duration keepalive_timeout = absl::Seconds(20);
  absl::Duration min_client_ping_interval = absl::Seconds(10);
  // Concurrent streams per HTTP/2 connection.
  int max_concurrent_streams = 100;
  // Public connections read in chunks of 1 KB (256 B to 4 KB, adapting)
  // instead of gRPC's 8 KB: clients send little, and an idle connection
  // holds its read buffer. Takes effect with gRPC's tcp_read_chunks
  // experiment off (entitysync-server's main turns it off).
  bool small_read_buffers = true;
  // Draining: clients are told to reconnect within this (with jitter).
  absl::Duration goaway_reconnect_within = absl::Seconds(2);
};

// grpc.health.v1 on the internal port answers two questions. The server as
// a whole (service "") is SERVING while the replica can take streams and
// Notify: not while it starts, drains or has lost its bus (readiness).
// kLivenessService is SERVING from start until shutdown (liveness).
inline constexpr char kLivenessService[] = "liveness";

class EntitySyncServer {
 public:
  static absl::StatusOr<std::unique_ptr<EntitySyncServer>> Start(
      ServerOptions options);
  ~EntitySyncServer();

  int public_port() const { return public_port_; }
  int internal_port() const { return internal_port_; }
  bool open_mode() const { return table_.open_mode(); }

  // Drains (SIGTERM): reports NOT_SERVING, refuses new streams, sends
  // `goaway` to every stream and waits up to `grace` for clients to move,
  // then shuts down. Returns early once every stream is gone.
  void Drain(absl::Duration grace);
  // Idempotent. Streams get UNAVAILABLE; calls still running after `grace`
  // are cancelled.
  void Shutdown(absl::Duration grace);
  // Blocks until Shutdown has finished.
  void Wait();

  // A new channel to the public port inside this process (no socket), for a
  // gateway hosted in the server. Valid until Shutdown.
  std::shared_ptr<grpc::Channel> PublicInProcessChannel(int max_message_bytes);
  // What a session needs, for a transport hosted beside the server's own
  // (the hosted gateway's browser connections, server/transport/websocket).
  // Valid until the server is destroyed.
  const SessionDeps& session_deps() const { return session_deps_; }

  // For tests and Admin.
  const Hub& hub() const { return *hub_; }
  SchedulerStats scheduler_stats() const { return scheduler_->stats(); }
  ReauthorizerStats reauthorizer_stats() const {
    return reauthorizer_->stats();
  }
  size_t stream_count() const { return registry_->size(); }
  // Await calls waiting now.
  size_t await_count() const { return awaits_->size(); }
  const ServerCounters& counters() const { return counters_; }
  absl::flat_hash_map<std::string, EntityCallStats> call_stats() const {
    return scheduler_->call_stats();
  }
  BusState bus_state() const { return bus_->state(); }

 private:
  class BusInterest;
  explicit EntitySyncServer(ServerOptions options);
  absl::Status Init();
  void OnNotice(const v1::Notice& notice);
  void SetServing(bool serving);
  absl::Duration MaxBackendTimeout() const;

  ServerOptions options_;
  ServerCounters counters_;
  // For counting bus reconnects (state callbacks come from the bus thread).
  std::atomic<bool> bus_was_connected_{false};
  std::atomic<bool> bus_lost_{false};
  std::string origin_;
  ChannelPool channels_;
  EntityTable table_;
  VersionClock clock_;
  std::unique_ptr<Bus> bus_;
  std::unique_ptr<BusInterest> interest_;
  // Before the hub and the sessions it holds: sessions post to these
  // threads until they are destroyed.
  std::unique_ptr<IoThreads> io_threads_;
  // grpc.health.v1 on the internal port; outlives the internal server.
  HealthService health_;
  // The internal port's (Notify, Admin, health).
  std::unique_ptr<IoThreads> internal_io_threads_;
  std::unique_ptr<Hub> hub_;
  std::unique_ptr<Executor> executor_;
  std::unique_ptr<ResolveScheduler> scheduler_;
  std::unique_ptr<ClusterOnceResolver> cluster_;
  std::unique_ptr<Reauthorizer> reauthorizer_;
  std::unique_ptr<NoticeDispatcher> dispatcher_;
  std::unique_ptr<PassthroughClient> passthrough_;
  std::unique_ptr<SessionRegistry> registry_;
  SessionDeps session_deps_;
  std::unique_ptr<AwaitRegistry> awaits_;
  std::unique_ptr<grpc::Service> subscribe_service_;
  std::unique_ptr<NotifierService> notifier_service_;
  std::unique_ptr<AdminService> admin_service_;
  std::unique_ptr<grpc::Server> public_server_;
  std::unique_ptr<grpc::Server> internal_server_;
  int public_port_ = 0;
  int internal_port_ = 0;

  absl::Mutex shutdown_mu_;
  bool shut_down_ ABSL_GUARDED_BY(shutdown_mu_) = false;
  bool stopped_ ABSL_GUARDED_BY(shutdown_mu_) = false;
};

}  // namespace entitysync

#endif  // ENTITYSYNC_SERVER_SERVER_H_
