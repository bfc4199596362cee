// entitysync-server: one replica. See docs/operations.md for the flags in
// context.

#include <cstdlib>
#include <string>
#include <thread>

#include "absl/flags/flag.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/time/time.h"
#include "adapters/bus/nats_bus.h"
#include "adapters/bus/redis_bus.h"
#include "adapters/gateway/gateway.h"
#include "adapters/gateway/static_files.h"
#include "common/log.h"
#include "common/process.h"
#include "common/tls.h"
#include "server/core/config.h"
#include "server/metrics.h"
#include "server/server.h"
#include "server/transport/websocket/hosted_gateway.h"

ABSL_FLAG(std::string, public_address, "127.0.0.1:7070",
          "Public gRPC address (EntitySync.Subscribe only).");
ABSL_FLAG(
    std::string, internal_address, "127.0.0.1:7071",
    "Internal gRPC address (Notifier, health, reflection). Never expose it.");
ABSL_FLAG(
    std::string, config, "",
    "Resolver table (text-format entitysync.v1.ServerConfig). Empty: open "
    "mode, where Notify's inline rows are pushed as they are.");
ABSL_FLAG(std::string, bus, "inprocess",
          "How replicas share change notices: \"inprocess\" (one replica), "
          "\"nats\" (any number of replicas on one NATS cluster) or "
          "\"redis\" (any number of replicas on one Redis, pub/sub).");
ABSL_FLAG(std::string, nats_url, "nats://127.0.0.1:4222",
          "With --bus=nats: comma-separated URLs of the NATS cluster.");
ABSL_FLAG(std::string, nats_subject_prefix, "entitysync",
          "With --bus=nats: subjects are <prefix>.<entity>.<encoded id>.");
ABSL_FLAG(std::string, redis_address, "127.0.0.1:6379",
          "With --bus=redis: host:port of Redis (comma-separated: tried in "
          "turn). The password, if any, comes from the environment variable "
          "ENTITYSYNC_REDIS_PASSWORD.");
ABSL_FLAG(std::string, redis_channel_prefix, "entitysync",
          "With --bus=redis: channels are <prefix>.<entity>.<encoded id>.");
ABSL_FLAG(absl::Duration, shutdown_grace, absl::Seconds(10),
          "On SIGINT/SIGTERM: how long clients get to move to another replica "
          "after `goaway` before the remaining streams are closed. Keep "
          "Kubernetes' terminationGracePeriodSeconds above it.");
ABSL_FLAG(absl::Duration, goaway_reconnect_within, absl::Seconds(2),
          "Draining clients reconnect after a random delay up to this.");
ABSL_FLAG(absl::Duration, max_connection_age, absl::Minutes(30),
          "Connections older than this are closed (after the grace) so that "
          "load rebalances after scale-out.");
ABSL_FLAG(absl::Duration, max_connection_age_grace, absl::Seconds(30),
          "Time a connection past its maximum age gets before it is closed.");
ABSL_FLAG(absl::Duration, keepalive_time, absl::Seconds(60),
          "Idle connections are pinged this often to find dead clients.");
ABSL_FLAG(absl::Duration, min_client_ping_interval, absl::Seconds(10),
          "Clients may send keepalive pings at most this often.");
ABSL_FLAG(int, max_concurrent_streams, 100,
          "Concurrent streams per HTTP/2 connection.");
ABSL_FLAG(bool, reflection, false,
          "Serve gRPC server reflection on the internal port (off: it is a "
          "sync service whose threads poll beside the I/O threads).");
ABSL_FLAG(int, io_threads, 0,
          "I/O threads of the public port, each polling its own completion "
          "queue; a Subscribe stream lives on the thread that accepted it. "
          "0: one per core.");
ABSL_FLAG(int, executor_threads, 2,
          "Threads for resolve batching and retries.");
ABSL_FLAG(uint64_t, max_streams, 100000, "Streams per replica.");
ABSL_FLAG(double, stream_rate, 2000,
          "New streams per second per replica (0: no limit); over it a "
          "stream gets RESOURCE_EXHAUSTED and the client retries.");
ABSL_FLAG(uint64_t, stream_burst, 10000,
          "New streams a replica takes at once before --stream_rate applies.");
ABSL_FLAG(absl::Duration, reauthorize_interval, absl::Minutes(5),
          "Every subscription's authorization is asked again this often "
          "(Resolve reason REAUTHORIZE); a key the resolver denies is "
          "revoked. 0: never.");
ABSL_FLAG(std::string, tls_cert_file, "",
          "PEM certificate chain of the public port; with --tls_key_file the "
          "public port speaks TLS, and so does --gateway_address (wss://, "
          "https://).");
ABSL_FLAG(std::string, tls_key_file, "", "PEM private key of the public port.");
ABSL_FLAG(std::string, tls_client_ca_file, "",
          "PEM CAs; when set, public clients must present a certificate they "
          "signed (mutual TLS).");
ABSL_FLAG(std::string, internal_tls_cert_file, "",
          "PEM certificate chain of the internal port (TLS).");
ABSL_FLAG(std::string, internal_tls_key_file, "",
          "PEM private key of the internal port.");
ABSL_FLAG(std::string, internal_tls_client_ca_file, "",
          "PEM CAs; when set, internal callers (Notify, Admin, health) must "
          "present a certificate they signed (mutual TLS).");
ABSL_FLAG(std::string, internal_token_file, "",
          "A file holding the token Notify and Admin calls must carry in "
          "their `authorization` metadata (bare or \"Bearer <token>\"). "
          "Empty: no token (the internal port is then guarded by the network "
          "alone).");
ABSL_FLAG(uint64_t, max_awaits, 10000,
          "Await long polls waiting at once per replica; more get "
          "RESOURCE_EXHAUSTED.");
ABSL_FLAG(absl::Duration, await_default_timeout, absl::Seconds(30),
          "How long an Await without timeout_ms waits.");
ABSL_FLAG(absl::Duration, await_max_timeout, absl::Minutes(5),
          "Longest Await wait; longer timeouts are cut to it.");
ABSL_FLAG(uint64_t, max_subscriptions_per_stream, 1000,
          "Subscriptions per stream.");
ABSL_FLAG(double, subscribe_rate, 200,
          "Sustained subscribe/unsubscribe requests per second per stream.");
ABSL_FLAG(uint64_t, max_outbound_queue_bytes, 4 << 20,
          "Bytes queued for one stream before it is closed as too slow.");
ABSL_FLAG(uint64_t, max_write_batch_bytes, 64 << 10,
          "Messages waiting for a stream leave in one write of up to this "
          "many bytes; 0: one message per write.");
ABSL_FLAG(
    absl::Duration, write_stall_timeout, absl::Seconds(10),
    "A write outstanding this long while updates wait closes the stream.");
ABSL_FLAG(uint64_t, max_row_bytes, 1 << 20, "Row bytes of one update.");
ABSL_FLAG(uint64_t, max_id_bytes, 1024, "Bytes of a key's id.");
ABSL_FLAG(uint64_t, max_entity_bytes, 64, "Bytes of a key's entity.");
ABSL_FLAG(uint64_t, max_credentials_bytes, 4096,
          "Bytes of a client's credentials, on every path: the "
          "`authorization` metadata of Subscribe and Await, `authenticate`, "
          "and the hosted gateway's requests.");
ABSL_FLAG(uint64_t, max_notify_changes, 1000, "Changes in one Notify call.");
ABSL_FLAG(std::string, metrics_address, "127.0.0.1:9464",
          "host:port serving Prometheus metrics at /metrics; empty serves "
          "none.");
ABSL_FLAG(std::string, gateway_address, "",
          "host:port for the browser gateway (WebSocket, grpc-web) hosted in "
          "this process; empty runs none. See adapters/gateway/PROTOCOL.md.");
ABSL_FLAG(std::string, gateway_static, "",
          "Static files for the hosted gateway: PREFIX=DIR[,PREFIX=DIR...].");
ABSL_FLAG(std::string, gateway_allowed_origins, "",
          "Origins allowed by the hosted gateway besides its own; * for any.");
ABSL_FLAG(uint64_t, gateway_max_connections, 10000,
          "Hosted gateway: WebSocket connections plus grpc-web calls.");
ABSL_FLAG(uint64_t, gateway_max_subscriptions, 1000,
          "Hosted gateway: keys per connection or call.");
ABSL_FLAG(uint64_t, gateway_max_message_bytes, 64 << 10,
          "Hosted gateway: largest WebSocket message or grpc-web body.");
ABSL_FLAG(absl::Duration, gateway_idle_timeout, absl::Seconds(60),
          "Hosted gateway: a connection silent this long is closed.");
ABSL_FLAG(absl::Duration, gateway_write_timeout, absl::Seconds(30),
          "Hosted gateway: a browser taking no frame this long is cut off.");
ABSL_FLAG(int, gateway_threads, 2,
          "Hosted gateway: threads running browser connections.");

namespace {

using entitysync::Log;
using entitysync::LogLevel;

absl::StatusOr<std::unique_ptr<entitysync::gateway::Gateway>> StartGateway(
    entitysync::EntitySyncServer* server) {
  entitysync::gateway::GatewayOptions options;
  options.address = absl::GetFlag(FLAGS_gateway_address);
  absl::StatusOr<std::vector<entitysync::gateway::StaticMount>> mounts =
      entitysync::gateway::ParseStaticMounts(
          absl::GetFlag(FLAGS_gateway_static));
  if (!mounts.ok()) return mounts.status();
  options.static_mounts = *std::move(mounts);
  options.allowed_origins = absl::StrSplit(
      absl::GetFlag(FLAGS_gateway_allowed_origins), ',', absl::SkipEmpty());
  options.max_connections = absl::GetFlag(FLAGS_gateway_max_connections);
  options.max_subscriptions = absl::GetFlag(FLAGS_gateway_max_subscriptions);
  options.max_message_bytes = absl::GetFlag(FLAGS_gateway_max_message_bytes);
  options.idle_timeout = absl::GetFlag(FLAGS_gateway_idle_timeout);
  options.write_timeout = absl::GetFlag(FLAGS_gateway_write_timeout);
  options.threads = absl::GetFlag(FLAGS_gateway_threads);
  // Browsers move between replicas as gRPC clients do, and speak TLS
  // (wss://, https://) where gRPC clients do, with the same files.
  options.max_connection_age = absl::GetFlag(FLAGS_max_connection_age);
  options.tls_cert_file = absl::GetFlag(FLAGS_tls_cert_file);
  options.tls_key_file = absl::GetFlag(FLAGS_tls_key_file);
  options.tls_client_ca_file = absl::GetFlag(FLAGS_tls_client_ca_file);
  return entitysync::StartHostedGateway(server, std::move(options));
}

// After StartProcess: the stop signals are already blocked in every thread
// this starts (gRPC's, made as soon as credentials are).
int Run() {
  entitysync::ServerOptions options;
  options.public_address = absl::GetFlag(FLAGS_public_address);
  options.internal_address = absl::GetFlag(FLAGS_internal_address);
  options.executor_threads = absl::GetFlag(FLAGS_executor_threads);
  options.io_threads = absl::GetFlag(FLAGS_io_threads);
  options.reflection = absl::GetFlag(FLAGS_reflection);
  options.goaway_reconnect_within =
      absl::GetFlag(FLAGS_goaway_reconnect_within);
  options.max_connection_age = absl::GetFlag(FLAGS_max_connection_age);
  options.max_connection_age_grace =
      absl::GetFlag(FLAGS_max_connection_age_grace);
  options.keepalive_time = absl::GetFlag(FLAGS_keepalive_time);
  options.min_client_ping_interval =
      absl::GetFlag(FLAGS_min_client_ping_interval);
  options.max_concurrent_streams = absl::GetFlag(FLAGS_max_concurrent_streams);
  options.reauthorize_interval = absl::GetFlag(FLAGS_reauthorize_interval);
  entitysync::Limits& limits = options.limits;
  limits.max_streams = absl::GetFlag(FLAGS_max_streams);
  limits.new_stream_rate_per_second = absl::GetFlag(FLAGS_stream_rate);
  limits.new_stream_burst = absl::GetFlag(FLAGS_stream_burst);
  limits.max_awaits = absl::GetFlag(FLAGS_max_awaits);
  limits.await_default_timeout = absl::GetFlag(FLAGS_await_default_timeout);
  limits.await_max_timeout = absl::GetFlag(FLAGS_await_max_timeout);
  limits.max_subscriptions_per_stream =
      absl::GetFlag(FLAGS_max_subscriptions_per_stream);
  limits.subscribe_rate_per_second = absl::GetFlag(FLAGS_subscribe_rate);
  limits.max_outbound_queue_bytes =
      absl::GetFlag(FLAGS_max_outbound_queue_bytes);
  limits.max_write_batch_bytes = absl::GetFlag(FLAGS_max_write_batch_bytes);
  // A batch is one gRPC message: it must fit what clients take by default.
  constexpr uint64_t kMaxBatchBytes = 4 << 20;
  if (limits.max_write_batch_bytes > kMaxBatchBytes) {
    Log(LogLevel::kError,
        absl::StrCat("--max_write_batch_bytes is at most ", kMaxBatchBytes,
                     " (the largest message a gRPC client takes by "
                     "default), not ",
                     limits.max_write_batch_bytes));
    return 2;
  }
  limits.write_stall_timeout = absl::GetFlag(FLAGS_write_stall_timeout);
  limits.max_row_bytes = absl::GetFlag(FLAGS_max_row_bytes);
  limits.max_id_bytes = absl::GetFlag(FLAGS_max_id_bytes);
  limits.max_entity_bytes = absl::GetFlag(FLAGS_max_entity_bytes);
  limits.max_credentials_bytes = absl::GetFlag(FLAGS_max_credentials_bytes);
  limits.max_notify_changes = absl::GetFlag(FLAGS_max_notify_changes);

  const std::string bus = absl::GetFlag(FLAGS_bus);
  if (bus == "nats") {
    entitysync::NatsBusOptions nats;
    nats.urls =
        absl::StrSplit(absl::GetFlag(FLAGS_nats_url), ',', absl::SkipEmpty());
    nats.subject_prefix = absl::GetFlag(FLAGS_nats_subject_prefix);
    options.bus = entitysync::NewNatsBus(std::move(nats));
  } else if (bus == "redis") {
    entitysync::RedisBusOptions redis;
    redis.addresses = absl::StrSplit(absl::GetFlag(FLAGS_redis_address), ',',
                                     absl::SkipEmpty());
    redis.channel_prefix = absl::GetFlag(FLAGS_redis_channel_prefix);
    // From the environment only, so it shows in no process list or log.
    if (const char* password = std::getenv("ENTITYSYNC_REDIS_PASSWORD")) {
      redis.password = password;
    }
    redis.on_error = [](const std::string& reason) {
      Log(LogLevel::kWarning, absl::StrCat("redis bus: ", reason));
    };
    options.bus = entitysync::NewRedisBus(std::move(redis));
  } else if (bus != "inprocess") {
    Log(LogLevel::kError,
        absl::StrCat("--bus must be \"inprocess\", \"nats\" or \"redis\", "
                     "not \"",
                     bus, "\""));
    return 2;
  }

  {
    entitysync::TlsFiles public_tls;
    public_tls.cert_file = absl::GetFlag(FLAGS_tls_cert_file);
    public_tls.key_file = absl::GetFlag(FLAGS_tls_key_file);
    public_tls.ca_file = absl::GetFlag(FLAGS_tls_client_ca_file);
    auto public_credentials =
        entitysync::MakeServerCredentials(public_tls, "--tls_*_file");
    entitysync::TlsFiles internal_tls;
    internal_tls.cert_file = absl::GetFlag(FLAGS_internal_tls_cert_file);
    internal_tls.key_file = absl::GetFlag(FLAGS_internal_tls_key_file);
    internal_tls.ca_file = absl::GetFlag(FLAGS_internal_tls_client_ca_file);
    auto internal_credentials = entitysync::MakeServerCredentials(
        internal_tls, "--internal_tls_*_file");
    for (const absl::Status& s :
         {public_credentials.status(), internal_credentials.status()}) {
      if (!s.ok()) {
        Log(LogLevel::kError, std::string(s.message()));
        return 2;
      }
    }
    options.public_credentials = *std::move(public_credentials);
    options.internal_credentials = *std::move(internal_credentials);
  }
  {
    absl::StatusOr<entitysync::InternalAuth> auth =
        entitysync::InternalAuth::FromFile(
            absl::GetFlag(FLAGS_internal_token_file));
    if (!auth.ok()) {
      Log(LogLevel::kError, std::string(auth.status().message()));
      return 2;
    }
    options.internal_auth = *std::move(auth);
  }

  const std::string config_path = absl::GetFlag(FLAGS_config);
  if (!config_path.empty()) {
    absl::StatusOr<entitysync::v1::ServerConfig> config =
        entitysync::LoadServerConfig(config_path);
    if (!config.ok()) {
      Log(LogLevel::kError, config.status().ToString());
      return 2;
    }
    options.config = *std::move(config);
  }

  absl::StatusOr<std::unique_ptr<entitysync::EntitySyncServer>> server =
      entitysync::EntitySyncServer::Start(std::move(options));
  if (!server.ok()) {
    Log(LogLevel::kError, server.status().ToString());
    return 1;
  }
  if ((*server)->open_mode()) {
    Log(LogLevel::kWarning,
        "no --config: open mode. Any entity is accepted without authorization "
        "and only Notify's inline rows are pushed.");
  }
  Log(LogLevel::kInfo,
      absl::StrCat("entitysync serving: public (Subscribe) on port ",
                   (*server)->public_port(),
                   ", internal (Notify, health) on port ",
                   (*server)->internal_port()));

  std::unique_ptr<entitysync::MetricsEndpoint> metrics;
  if (!absl::GetFlag(FLAGS_metrics_address).empty()) {
    absl::StatusOr<std::unique_ptr<entitysync::MetricsEndpoint>> started =
        entitysync::MetricsEndpoint::Start(absl::GetFlag(FLAGS_metrics_address),
                                           server->get());
    if (!started.ok()) {
      Log(LogLevel::kError, started.status().ToString());
      (*server)->Shutdown(absl::ZeroDuration());
      return 1;
    }
    metrics = *std::move(started);
    Log(LogLevel::kInfo, absl::StrCat("metrics (Prometheus) on port ",
                                      metrics->port(), " at /metrics"));
  }

  std::unique_ptr<entitysync::gateway::Gateway> gateway;
  if (!absl::GetFlag(FLAGS_gateway_address).empty()) {
    absl::StatusOr<std::unique_ptr<entitysync::gateway::Gateway>> started =
        StartGateway(server->get());
    if (!started.ok()) {
      Log(LogLevel::kError, started.status().ToString());
      (*server)->Shutdown(absl::ZeroDuration());
      return absl::IsInvalidArgument(started.status()) ? 2 : 1;
    }
    gateway = *std::move(started);
    Log(LogLevel::kInfo, absl::StrCat("gateway (WebSocket, grpc-web) on port ",
                                      gateway->port()));
  }

  const absl::Duration grace = absl::GetFlag(FLAGS_shutdown_grace);
  std::thread signal_thread([&] {
    entitysync::WaitForStopSignal("draining");
    // Browsers told to move must not come back to this replica.
    if (gateway != nullptr) gateway->StopAccepting();
    (*server)->Drain(grace);
  });
  (*server)->Wait();
  signal_thread.join();
  // Its upstream channels lead into the server: stopped before the server
  // object goes away.
  if (gateway != nullptr) gateway->Stop(absl::Seconds(1));
  Log(LogLevel::kInfo, "stopped");
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  // gRPC 1.51 reads each connection into a fixed 8 KB slice unless this
  // experiment is off; with it off, the public port's small read chunks
  // (ServerOptions::small_read_buffers) take 3.4 KB less per idle
  // connection (bench/README.md). Before gRPC reads its configuration; an
  // operator's own GRPC_EXPERIMENTS wins.
  setenv("GRPC_EXPERIMENTS", "-tcp_read_chunks", /*overwrite=*/0);
  entitysync::StartProcess(
      argc, argv,
      "entitysync-server: keeps clients in sync with server-side entities.\n"
      "  entitysync-server [--config=resolvers.textproto] "
      "[--public_address=...]");
  return Run();
}
