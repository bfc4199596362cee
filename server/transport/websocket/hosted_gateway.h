// The browser gateway a replica hosts (entitysync-server --gateway_address):
// adapters/gateway's WebSocket and grpc-web front, its browsers' streams
// linked straight onto the replica's session core (LocalLink), its Await
// calls over an in-process channel. One place builds it, for main.cc and
// for the tests that run a replica with browsers on it.
#ifndef ENTITYSYNC_SERVER_TRANSPORT_WEBSOCKET_HOSTED_GATEWAY_H_
#define ENTITYSYNC_SERVER_TRANSPORT_WEBSOCKET_HOSTED_GATEWAY_H_

#include <memory>

#include "absl/status/statusor.h"
#include "adapters/gateway/gateway.h"
#include "server/server.h"

namespace entitysync {

// Starts it on options.address. `server` outlives the gateway; stop the
// gateway (Gateway::Stop) before the server shuts down. options.upstream
// and streams_per_channel are ignored: there is no upstream connection.
absl::StatusOr<std::unique_ptr<gateway::Gateway>> StartHostedGateway(
    EntitySyncServer* server, gateway::GatewayOptions options);

}  // namespace entitysync

#endif  // ENTITYSYNC_SERVER_TRANSPORT_WEBSOCKET_HOSTED_GATEWAY_H_
