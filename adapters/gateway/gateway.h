// Gateway is the browser front of entitysync: an HTTP/1.1 server (Boost.Beast)
// serving the WebSocket protocols and grpc-web Watch of PROTOCOL.md, CORS,
// /healthz and optional static files, as a stateless client of the
// service's public port. It runs as the entitysync-gateway binary or inside
// entitysync-server (--gateway_address).
//
//   GatewayOptions options;
//   options.address = "127.0.0.1:8080";
//   options.upstream = "127.0.0.1:7070";
//   absl::StatusOr<std::unique_ptr<Gateway>> gateway = Gateway::Start(options);
//
// Threading: options.threads threads run every connection, each on its own
// strand. Start and Stop may be called from any thread but not from a
// connection's handler.
#ifndef ENTITYSYNC_ADAPTERS_GATEWAY_GATEWAY_H_
#define ENTITYSYNC_ADAPTERS_GATEWAY_GATEWAY_H_

#include <memory>
#include <thread>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "adapters/gateway/beast.h"
#include "adapters/gateway/gateway_state.h"
#include "adapters/gateway/upstream.h"

namespace entitysync {
namespace gateway {

class Gateway {
 public:
  // Listens on options.address and starts the threads. `channels` makes the
  // upstream channels; null means TCP to options.upstream. `links` opens
  // the Subscribe streams of WebSockets and grpc-web Watch calls; null
  // means calls on those channels (a replica hosting the gateway passes its
  // session core instead). INVALID_ARGUMENT for unusable options,
  // UNAVAILABLE when the address cannot be bound.
  static absl::StatusOr<std::unique_ptr<Gateway>> Start(
      GatewayOptions options, UpstreamPool::ChannelFactory channels = nullptr,
      SubscribeLinkFactory links = nullptr);

  Gateway(const Gateway&) = delete;
  Gateway& operator=(const Gateway&) = delete;
  ~Gateway();

  // The port it listens on.
  int port() const { return port_; }
  // WebSocket connections and grpc-web calls open now.
  size_t connections() const { return state_.connections.size(); }

  // Stops accepting new connections (they are refused by the OS); open ones
  // go on. For a replica that starts draining. Idempotent.
  void StopAccepting();

  // Stops accepting, closes every WebSocket with 1001 and ends every
  // grpc-web call with UNAVAILABLE, waits up to `grace` for them to finish,
  // then stops the threads. Idempotent.
  void Stop(absl::Duration grace = absl::Seconds(5));

 private:
  Gateway(GatewayOptions options, UpstreamPool::ChannelFactory channels,
          SubscribeLinkFactory links);

  void DoAccept();

  GatewayState state_;
  net::io_context io_;
  tcp::acceptor acceptor_;
  net::steady_timer accept_retry_;
  int port_ = 0;
  std::vector<std::thread> threads_;
  bool stopped_ = false;
};

}  // namespace gateway
}  // namespace entitysync

#endif  // ENTITYSYNC_ADAPTERS_GATEWAY_GATEWAY_H_
