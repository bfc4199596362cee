// SubscribeLink: one EntitySync.Subscribe stream as a gateway connection
// (WebSocket or grpc-web Watch) sees it. Requests go in with Write;
// responses come out through on_message, one write of the stream at a time
// (usually one message, several when they waited together), the next only
// after ReadNext (so a browser that reads slowly slows the stream down and the
// service's slow-consumer policy applies); exactly one on_done ends it.
//
// Two implementations: UpstreamStream (upstream.h), a gRPC call to the
// service, for the standalone gateway; and, inside a replica, a link
// straight onto the session core with no gRPC call per browser
// (server/transport/websocket/local_link.h).
//
// Threading: Write, ReadNext and Cancel are called on the connection's
// executor. Events may run on any thread (gRPC's, or the connection's own);
// the connection posts them to its executor and must not block in them. A
// connection may handle on_message inline when it arrives on its executor,
// but must not call the link back from inside it (ReadNext from a task of
// its own: the link may be in the middle of its own write).
#ifndef ENTITYSYNC_ADAPTERS_GATEWAY_SUBSCRIBE_LINK_H_
#define ENTITYSYNC_ADAPTERS_GATEWAY_SUBSCRIBE_LINK_H_

#include <cstddef>
#include <functional>
#include <memory>
#include <string>

#include "adapters/gateway/beast.h"
#include "adapters/gateway/link_message.h"
#include "entitysync/v1/entitysync.pb.h"
#include "grpcpp/support/status.h"

namespace entitysync {
namespace gateway {

class SubscribeLink {
 public:
  struct Events {
    // Messages, in order; call ReadNext for the next ones.
    std::function<void(LinkMessages)> on_message;
    // A queued write went out; the count still queued. May be empty.
    std::function<void(size_t queued)> on_write_done;
    // The stream has given up on the messages the connection still holds
    // (its browser stopped reading: the write stalled past
    // --write_stall_timeout): drop the connection now, as a gRPC stream's
    // cancelled write resets it, rather than wait to flush them. on_done
    // follows. May be empty.
    std::function<void()> on_write_cancelled;
    // Exactly once, last.
    std::function<void(const grpc::Status&)> on_done;
  };

  virtual ~SubscribeLink() = default;

  // Queues a request; dropped once the stream is ending. Returns the number
  // still queued (including this one) so the caller can stop reading its
  // browser.
  virtual size_t Write(v1::SubscribeRequest request) = 0;
  // Asks for the next message; no-op while one is being read or after the
  // stream ended.
  virtual void ReadNext() = 0;
  // Ends the stream; on_done follows.
  virtual void Cancel() = 0;
};

// Opens the link of a connection whose handlers run on `executor` (a
// strand), with the browser's `authorization` (checked by the caller with
// IsValidMetadataValue, since a gRPC link sends it as metadata).
using SubscribeLinkFactory = std::function<std::shared_ptr<SubscribeLink>(
    const std::string& authorization, net::any_io_executor executor,
    SubscribeLink::Events events)>;

}  // namespace gateway
}  // namespace entitysync

#endif  // ENTITYSYNC_ADAPTERS_GATEWAY_SUBSCRIBE_LINK_H_
