// LocalLink: the Subscribe stream of a browser connection of the gateway
// hosted in a replica (--gateway_address), straight on the session core: no
// gRPC call, channel or HTTP/2 stream per browser. The gateway's connection
// (WsSession, GrpcWebCall) sees a gateway::SubscribeLink; the Session sees a
// SessionTransport whose executor is the connection's strand.
//
// Flow: a request from the browser goes to Session::OnRequest at once (none
// once the session is closing). A session Write (the messages that waited
// together, up to --max_write_batch_bytes) is handed to the connection in
// one event, which writes all their frames in one send, and the session
// hears OnWriteDone at ReadNext, once the connection has written them: so
// the connection holds at most one write, and a browser that reads slowly
// leaves the updates waiting in the session's queue, where they conflate
// and where the slow-consumer policy (write stall, queue bytes) applies as
// to a gRPC stream.
//
// Encoding: a message's forms (OutboundMessage::forms) travel with it, so
// an update fanned out to many browsers is parsed once and encoded once per
// protocol in use, by whichever connection writes it first
// (gateway::LinkMessage).
//
// Threading: everything on the connection's strand; Session calls arrive
// there (its executor is that strand) and the events post to it. The one
// exception is Cancel after the gateway's threads have stopped (Abort),
// which ends the session on the calling thread.
#ifndef ENTITYSYNC_SERVER_TRANSPORT_WEBSOCKET_LOCAL_LINK_H_
#define ENTITYSYNC_SERVER_TRANSPORT_WEBSOCKET_LOCAL_LINK_H_

#include <cstddef>
#include <memory>
#include <string>

#include "adapters/gateway/beast.h"
#include "adapters/gateway/subscribe_link.h"
#include "server/session/session.h"
#include "server/session/session_transport.h"

namespace entitysync {

class LocalLink final : public gateway::SubscribeLink,
                        public SessionTransport,
                        public std::enable_shared_from_this<LocalLink> {
 public:
  // Links every connection to a new Session of `deps` (which outlive every
  // link). A session the replica refuses (credentials over the limit, the
  // stream limit or rate, draining) ends the link at once with its status.
  static gateway::SubscribeLinkFactory Factory(const SessionDeps* deps);

  LocalLink(gateway::net::any_io_executor executor, Events events);
  LocalLink(const LocalLink&) = delete;
  LocalLink& operator=(const LocalLink&) = delete;
  ~LocalLink() override;

  // gateway::SubscribeLink, on the strand. Nothing waits: Write returns 0.
  size_t Write(v1::SubscribeRequest request) override;
  void ReadNext() override;
  void Cancel() override;

  // SessionTransport, on the strand.
  void Write(OutboundBatch messages) override;
  void Finish(const grpc::Status& status) override;
  void CancelWrite() override;

 private:
  class StrandExecutor;

  // The write in flight ends (taken, or failed).
  void EndWrite(bool ok);
  // Ends the link (once): on_done, then the session's OnDone on the strand.
  void End(const grpc::Status& status);
  // Session::OnDone, once, then the strand is let go.
  void DeliverOnDone();

  const gateway::net::any_io_executor executor_;
  Events events_;  // released by End
  std::shared_ptr<StrandExecutor> session_executor_;
  std::shared_ptr<Session> session_;  // null until opened, and after OnDone
  bool write_in_flight_ = false;      // handed to the connection, not yet taken
  bool ended_ = false;
};

}  // namespace entitysync

#endif  // ENTITYSYNC_SERVER_TRANSPORT_WEBSOCKET_LOCAL_LINK_H_
