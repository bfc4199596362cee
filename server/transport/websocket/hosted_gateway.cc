#include "server/transport/websocket/hosted_gateway.h"

#include <utility>

#include "server/transport/websocket/local_link.h"

namespace entitysync {

absl::StatusOr<std::unique_ptr<gateway::Gateway>> StartHostedGateway(
    EntitySyncServer* server, gateway::GatewayOptions options) {
  // In-process channels have no per-connection stream cap.
  options.streams_per_channel = 1 << 30;
  const int max_message_bytes = options.max_upstream_message_bytes;
  return gateway::Gateway::Start(
      std::move(options),
      [server, max_message_bytes] {
        return server->PublicInProcessChannel(max_message_bytes);
      },
      LocalLink::Factory(&server->session_deps()));
}

}  // namespace entitysync
