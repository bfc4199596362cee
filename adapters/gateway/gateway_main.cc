// entitysync-gateway: the browser front of entitysync (see PROTOCOL.md).

#include <string>
#include <thread>
#include <utility>

#include "absl/flags/flag.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "adapters/gateway/gateway.h"
#include "adapters/gateway/static_files.h"
#include "common/log.h"
#include "common/process.h"
#include "common/tls.h"

ABSL_FLAG(std::string, address, "127.0.0.1:8080",
          "host:port for HTTP, WebSocket and grpc-web.");
ABSL_FLAG(std::string, upstream, "127.0.0.1:7070",
          "gRPC target of entitysync's public (Subscribe) port: host:port, "
          "or ipv4:h1:p1,h2:p2 / dns:///name:port for several replicas "
          "(streams are spread round-robin).");
ABSL_FLAG(std::string, static, "",
          "Static files: PREFIX=DIR[,PREFIX=DIR...], e.g. "
          "/=examples/web,/lib/=client/web/dist. Empty serves none.");
ABSL_FLAG(std::string, allowed_origins, "",
          "Comma-separated origins (scheme://host[:port]) allowed besides the "
          "gateway's own; * allows any.");
ABSL_FLAG(uint64_t, max_connections, 10000,
          "WebSocket connections plus grpc-web calls at once.");
ABSL_FLAG(uint64_t, max_subscriptions, 1000, "Keys per connection or call.");
ABSL_FLAG(uint64_t, max_message_bytes, 64 << 10,
          "Largest WebSocket message or grpc-web request from a browser.");
ABSL_FLAG(absl::Duration, idle_timeout, absl::Seconds(60),
          "Close a connection silent (not even a pong) for this long.");
ABSL_FLAG(absl::Duration, write_timeout, absl::Seconds(30),
          "Cut off a browser that takes no frame for this long.");
ABSL_FLAG(int, threads, 2, "Threads running connections.");
ABSL_FLAG(absl::Duration, max_connection_age, absl::ZeroDuration(),
          "A WebSocket older than this (+-10%) is closed with 1012 and the "
          "browser reconnects; 0: never.");
ABSL_FLAG(int, streams_per_channel, 90,
          "Upstream streams per HTTP/2 connection (below the service's "
          "--max_concurrent_streams).");
ABSL_FLAG(absl::Duration, shutdown_grace, absl::Seconds(5),
          "On SIGTERM, how long connections get to close.");
ABSL_FLAG(std::string, tls_cert_file, "",
          "PEM certificate chain; with --tls_key_file browsers connect with "
          "TLS (wss://, https://).");
ABSL_FLAG(std::string, tls_key_file, "", "PEM private key of --tls_cert_file.");
ABSL_FLAG(std::string, tls_client_ca_file, "",
          "PEM CAs; when set, browsers must present a certificate they signed "
          "(mutual TLS).");
ABSL_FLAG(std::string, upstream_tls_ca_file, "",
          "PEM CAs of the upstream's certificate; setting any --upstream_tls_* "
          "flag makes the upstream connection TLS (system roots when this is "
          "empty).");
ABSL_FLAG(bool, upstream_tls, false,
          "TLS to the upstream with the system's roots.");
ABSL_FLAG(std::string, upstream_tls_cert_file, "",
          "PEM client certificate for the upstream (mutual TLS).");
ABSL_FLAG(std::string, upstream_tls_key_file, "",
          "PEM private key of --upstream_tls_cert_file.");
ABSL_FLAG(std::string, upstream_tls_server_name, "",
          "Name checked against the upstream's certificate instead of its "
          "host.");

namespace {

using entitysync::Log;
using entitysync::LogLevel;

int Run() {
  entitysync::gateway::GatewayOptions options;
  options.address = absl::GetFlag(FLAGS_address);
  options.upstream = absl::GetFlag(FLAGS_upstream);
  absl::StatusOr<std::vector<entitysync::gateway::StaticMount>> mounts =
      entitysync::gateway::ParseStaticMounts(absl::GetFlag(FLAGS_static));
  if (!mounts.ok()) {
    Log(LogLevel::kError,
        absl::StrCat("--static: ", mounts.status().message()));
    return 2;
  }
  options.static_mounts = *std::move(mounts);
  options.allowed_origins = absl::StrSplit(absl::GetFlag(FLAGS_allowed_origins),
                                           ',', absl::SkipEmpty());
  options.max_connections = absl::GetFlag(FLAGS_max_connections);
  options.max_subscriptions = absl::GetFlag(FLAGS_max_subscriptions);
  options.max_message_bytes = absl::GetFlag(FLAGS_max_message_bytes);
  options.idle_timeout = absl::GetFlag(FLAGS_idle_timeout);
  options.write_timeout = absl::GetFlag(FLAGS_write_timeout);
  options.threads = absl::GetFlag(FLAGS_threads);
  options.max_connection_age = absl::GetFlag(FLAGS_max_connection_age);
  options.streams_per_channel = absl::GetFlag(FLAGS_streams_per_channel);
  options.tls_cert_file = absl::GetFlag(FLAGS_tls_cert_file);
  options.tls_key_file = absl::GetFlag(FLAGS_tls_key_file);
  options.tls_client_ca_file = absl::GetFlag(FLAGS_tls_client_ca_file);
  entitysync::TlsFiles tls;
  tls.ca_file = absl::GetFlag(FLAGS_upstream_tls_ca_file);
  tls.cert_file = absl::GetFlag(FLAGS_upstream_tls_cert_file);
  tls.key_file = absl::GetFlag(FLAGS_upstream_tls_key_file);
  options.upstream_server_name = absl::GetFlag(FLAGS_upstream_tls_server_name);
  if (absl::GetFlag(FLAGS_upstream_tls) || !tls.ca_file.empty() ||
      tls.has_identity() || !options.upstream_server_name.empty()) {
    auto credentials =
        entitysync::MakeTlsChannelCredentials(tls, "--upstream_tls_*");
    if (!credentials.ok()) {
      Log(LogLevel::kError, std::string(credentials.status().message()));
      return 2;
    }
    options.upstream_credentials = *std::move(credentials);
  }

  const std::string upstream = options.upstream;
  absl::StatusOr<std::unique_ptr<entitysync::gateway::Gateway>> gateway =
      entitysync::gateway::Gateway::Start(std::move(options));
  if (!gateway.ok()) {
    Log(LogLevel::kError, gateway.status().ToString());
    return absl::IsInvalidArgument(gateway.status()) ? 2 : 1;
  }
  Log(LogLevel::kInfo,
      absl::StrCat("entitysync-gateway listening on port ", (*gateway)->port(),
                   " (WebSocket /ws/entity-sync/, grpc-web), upstream ",
                   upstream));
  entitysync::WaitForStopSignal("stopping");
  (*gateway)->Stop(absl::GetFlag(FLAGS_shutdown_grace));
  Log(LogLevel::kInfo, "stopped");
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  entitysync::StartProcess(
      argc, argv,
      "entitysync-gateway: WebSocket and grpc-web front of entitysync for "
      "browsers.\n  entitysync-gateway [--address=127.0.0.1:8080] "
      "[--upstream=127.0.0.1:7070] [--static=/=examples/web]");
  return Run();
}
