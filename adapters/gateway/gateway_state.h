// What every gateway connection shares: the options, the upstream pool, the
// static files and the registry of open connections. Owned by Gateway,
// which outlives every connection; connections hold a plain pointer.
#ifndef ENTITYSYNC_ADAPTERS_GATEWAY_GATEWAY_STATE_H_
#define ENTITYSYNC_ADAPTERS_GATEWAY_GATEWAY_STATE_H_

#include <atomic>
#include <cstddef>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "adapters/gateway/gateway_stream.h"
#include "adapters/gateway/static_files.h"
#include "adapters/gateway/subscribe_link.h"
#include "adapters/gateway/upstream.h"

namespace entitysync {
namespace gateway {

struct GatewayOptions {
  // host:port to listen on; port 0 picks a free one (see Gateway::port).
  std::string address = "127.0.0.1:8080";
  // gRPC target of the service's public port (EntitySync.Subscribe):
  // host:port, or several replicas as ipv4:h1:p1,h2:p2 or a DNS name with
  // several addresses; streams are spread round-robin.
  std::string upstream = "127.0.0.1:7070";
  // Null: plaintext to the upstream. TLS (and a client certificate) when
  // the replicas' public port requires it; see common/tls.h.
  std::shared_ptr<grpc::ChannelCredentials> upstream_credentials;
  // Checked against the upstream's certificate instead of its host; empty:
  // the host.
  std::string upstream_server_name;
  // Origins (scheme://host[:port]) allowed to open a WebSocket or call
  // grpc-web besides the gateway's own; "*" allows every origin. Requests
  // without an Origin header (non-browser clients) are always allowed.
  std::vector<std::string> allowed_origins;
  // URL prefix → directory of static files; empty serves none.
  std::vector<StaticMount> static_mounts;
  // WebSocket connections plus grpc-web calls open at once.
  size_t max_connections = 10000;
  // Keys one connection or call may hold.
  size_t max_subscriptions = 1000;
  // Largest WebSocket message, or grpc-web request body, from a browser.
  size_t max_message_bytes = 64 << 10;
  // A connection from which nothing (not even a pong) arrives for this long
  // is closed; the gateway pings at half of it.
  absl::Duration idle_timeout = absl::Seconds(60);
  // A browser that does not take a frame for this long is cut off.
  absl::Duration write_timeout = absl::Seconds(30);
  // An HTTP request (or a TLS handshake, 10 s) that takes longer to arrive
  // ends its connection.
  absl::Duration request_timeout = absl::Seconds(30);
  // A WebSocket older than this (+-10%) is closed with 1012 after its
  // pending frames, a grpc-web Watch ends with UNAVAILABLE, and the browser
  // reconnects (maybe to another replica);
  // 0: never. A replica hosting the gateway sets its --max_connection_age.
  absl::Duration max_connection_age = absl::ZeroDuration();
  // The age after which one connection is ended: max_connection_age spread
  // by +-10%, as gRPC does for its own connections, so that browsers that
  // connected together (after a deploy) do not all come back at once.
  absl::Duration SpreadConnectionAge() const;
  // Threads running connections.
  int threads = 2;
  // TLS for browsers (wss://, https://): the PEM certificate chain and
  // private key; with client_ca_file, browsers must present a certificate
  // those CAs signed. Empty: plain TCP. A replica hosting the gateway uses
  // its public port's (--tls_*_file).
  std::string tls_cert_file;
  std::string tls_key_file;
  std::string tls_client_ca_file;
  // Upstream streams per channel (HTTP/2 connection); stay below the
  // service's --max_concurrent_streams (100).
  int streams_per_channel = 90;
  // Largest message accepted from the service.
  int max_upstream_message_bytes = 16 << 20;
};

// A WebSocket connection or grpc-web call, as the registry sees it.
class GatewayConnection {
 public:
  virtual ~GatewayConnection() = default;
  // Ends the connection because the gateway stops (close code 1001, or
  // UNAVAILABLE for grpc-web). Any thread; returns at once.
  virtual void Shutdown() = 0;
  // Cancels the upstream stream and closes the socket at once. Only once
  // the gateway's threads have stopped (nothing else touches the connection
  // then).
  virtual void Abort() = 0;
};

// Open connections, for the max_connections limit and for Stop. Thread-safe.
class ConnectionRegistry {
 public:
  explicit ConnectionRegistry(size_t max_connections)
      : max_connections_(max_connections) {}

  // false when full or stopping.
  bool TryAdd(const std::shared_ptr<GatewayConnection>& connection);
  void Remove(GatewayConnection* connection);
  // Refuses new connections and shuts down the open ones.
  void ShutdownAll();
  // Aborts the connections still open (see GatewayConnection::Abort).
  void AbortAll();
  size_t size() const;
  bool full() const { return size() >= max_connections_; }

 private:
  const size_t max_connections_;
  mutable absl::Mutex mu_;
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  absl::flat_hash_map<GatewayConnection*, std::weak_ptr<GatewayConnection>>
      connections_ ABSL_GUARDED_BY(mu_);
};

struct GatewayState {
  // Null `links`: every Subscribe stream is a call on `upstream`.
  GatewayState(GatewayOptions options_in, UpstreamPool::ChannelFactory factory,
               SubscribeLinkFactory links_in)
      : options(std::move(options_in)),
        upstream(std::move(factory), options.streams_per_channel),
        links(links_in != nullptr ? std::move(links_in)
                                  : UpstreamStream::Factory(&upstream)),
        static_files(options.static_mounts),
        connections(options.max_connections) {}

  // Whether a browser page from `origin` may connect to a gateway reached as
  // `host` (the Host header).
  bool OriginAllowed(absl::string_view origin, absl::string_view host) const;

  const GatewayOptions options;
  // HttpSessions alive (connections not, or not yet, upgraded).
  std::atomic<size_t> http_sessions{0};
  // Channels to the service's public port: Await, and the Subscribe
  // streams unless `links` leads elsewhere.
  UpstreamPool upstream;
  // Where each WebSocket's and grpc-web Watch's Subscribe stream goes.
  const SubscribeLinkFactory links;
  const StaticFiles static_files;
  ConnectionRegistry connections;
  // Set (by Gateway::Start, before any connection) when browsers speak TLS.
  std::unique_ptr<ssl::context> tls;
};

}  // namespace gateway
}  // namespace entitysync

#endif  // ENTITYSYNC_ADAPTERS_GATEWAY_GATEWAY_STATE_H_
