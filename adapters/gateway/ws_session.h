// WsSession is one browser WebSocket at /ws/entity-sync/ and its upstream
// Subscribe stream (see PROTOCOL.md for the three modes).
//
// Flow: a browser frame is parsed (ws_codec, or protobuf in binary mode) and
// written upstream with the browser's own request_id (the service echoes
// it); every upstream message becomes zero or more browser frames. The
// gateway keeps no per-request state, only the set of subscribed keys for
// --max_subscriptions (the service enforces its own limit too). The next
// upstream message is read only once the frames of the previous one have been
// written (UpstreamStream's flow control), and the browser is read only while
// fewer than a few requests wait to go upstream, so a connection buffers a
// bounded amount either way.
//
// Threading: everything runs on the connection's strand. Upstream events are
// posted to it, except messages from a link that delivers on the strand
// already (the replica's own, LocalLink), which are written from the same
// task. At most one read and one write (or close) in flight on
// the socket, as Beast requires.
#ifndef ENTITYSYNC_ADAPTERS_GATEWAY_WS_SESSION_H_
#define ENTITYSYNC_ADAPTERS_GATEWAY_WS_SESSION_H_

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_set.h"
#include "adapters/gateway/beast.h"
#include "adapters/gateway/coalescing_stream.h"
#include "adapters/gateway/gateway_state.h"
#include "adapters/gateway/gateway_stream.h"
#include "adapters/gateway/link_message.h"
#include "adapters/gateway/subscribe_link.h"
#include "adapters/gateway/ws_codec.h"
#include "entitysync/v1/entitysync.pb.h"

namespace entitysync {
namespace gateway {

class WsSession : public GatewayConnection,
                  public std::enable_shared_from_this<WsSession> {
 public:
  WsSession(HttpStream&& stream, GatewayState* state, WsMode mode,
            const std::string& subprotocol);
  ~WsSession() override;

  // Completes the upgrade of `request` and starts the upstream stream with
  // the request's authorization header. Call once, registered already.
  void Run(HttpRequest request);
  void Shutdown() override;
  void Abort() override;

 private:
  void OnAccept(beast::error_code error);
  // Closes with 1012 once the connection is older than the options'
  // max_connection_age (when set), so browsers spread over new replicas.
  void ArmAgeTimer();
  void StartUpstream();
  void DoRead();
  void OnRead(beast::error_code error, size_t bytes);
  void HandleFrame(bool binary, std::string frame);
  void Forward(v1::SubscribeRequest request);
  void SendError(uint64_t request_id, const absl::Status& status,
                 const v1::EntityKey* key = nullptr);
  void MaybeResumeRead();

  void OnUpstreamMessages(LinkMessages messages);
  // Queues the frames of one of them; false once the connection closes.
  bool HandleUpstream(const LinkMessage& message);
  void OnUpstreamWriteDone(size_t queued);
  void OnUpstreamDone(const grpc::Status& status);
  // Keeps the count of subscriptions in step with the service's answers.
  void TrackAnswer(const v1::SubscribeResponse& response);

  void Send(WsFrame frame);  // a frame of this connection alone
  void Send(std::shared_ptr<const WsFrame> frame);
  // Writes the next frame; while more wait behind it the socket layer is
  // held, so all of them leave in one send.
  void DoWrite();
  // Cuts the browser off unless the write (or close) started now finishes
  // within --write_timeout.
  void ArmWriteTimer();
  void StartWriteTimer(std::chrono::steady_clock::time_point at);
  void OnWrite(beast::error_code error, size_t bytes);
  // Closes with `reason` once the frames queued before it are written.
  void CloseAfterFlush(websocket::close_reason reason);
  void DoClose();
  // The socket is finished: cancel upstream, leave the registry.
  void Finish();
  void CloseSocket();
  // True on this connection's strand.
  bool OnStrand();

  websocket::stream<CoalescingStream<WsStream>> ws_;
  GatewayState* const state_;
  const WsMode mode_;
  const absl::string_view subprotocol_;  // one of ws_codec's constants
  net::steady_timer write_timer_;
  net::steady_timer goaway_timer_;

  // Strand only.
  std::string authorization_;
  beast::flat_buffer read_buffer_;
  std::shared_ptr<SubscribeLink> upstream_;
  // Frames to write, from out_head_ on (a vector: a deque allocates its
  // first block even when empty). A frame of a message shared with other
  // connections is shared, not copied (LinkMessage).
  std::vector<std::shared_ptr<const WsFrame>> out_;
  size_t out_head_ = 0;
  std::shared_ptr<const WsFrame> in_write_;  // the frame being written
  // When the write in flight started; the timer checks it (ArmWriteTimer).
  std::chrono::steady_clock::time_point write_started_;
  bool write_timer_armed_ = false;
  bool accepted_ = false;
  bool reading_ = false;
  bool writing_ = false;
  bool closing_ = false;  // a close is queued or sent; nothing else goes out
  bool finished_ = false;
  bool upstream_waiting_ = false;  // an upstream message awaits flushing
  bool upstream_done_ = false;
  bool goaway_ = false;
  size_t upstream_queued_ = 0;
  std::optional<websocket::close_reason> close_reason_;
  absl::flat_hash_set<std::pair<std::string, std::string>> subscriptions_;
};

}  // namespace gateway
}  // namespace entitysync

#endif  // ENTITYSYNC_ADAPTERS_GATEWAY_WS_SESSION_H_
