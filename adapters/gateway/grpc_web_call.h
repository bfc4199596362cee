// GrpcWebCall is one grpc-web EntitySyncWeb/Watch call: the HTTP/1.1
// response streams the upstream Subscribe stream's messages as grpc-web
// frames (chunked), and ends with a trailers frame carrying the upstream
// status. Upstream flow control as in WsSession: the next message is read
// once the previous frame is written. A read kept open on the socket notices
// a browser that goes away and cancels upstream.
//
// Threading: everything runs on the connection's strand.
#ifndef ENTITYSYNC_ADAPTERS_GATEWAY_GRPC_WEB_CALL_H_
#define ENTITYSYNC_ADAPTERS_GATEWAY_GRPC_WEB_CALL_H_

#include <deque>
#include <memory>
#include <optional>
#include <string>

#include "adapters/gateway/beast.h"
#include "adapters/gateway/gateway_state.h"
#include "adapters/gateway/gateway_stream.h"
#include "adapters/gateway/grpc_web_codec.h"
#include "adapters/gateway/link_message.h"
#include "adapters/gateway/subscribe_link.h"
#include "entitysync/v1/gateway.pb.h"

namespace entitysync {
namespace gateway {

// Headers every grpc-web and preflight response carries for `origin` (empty
// when the request had none).
void SetCorsHeaders(absl::string_view origin, http::response_header<>* headers);

class GrpcWebCall : public GatewayConnection,
                    public std::enable_shared_from_this<GrpcWebCall> {
 public:
  GrpcWebCall(HttpStream&& stream, GatewayState* state, GrpcWebFormat format,
              std::string origin);

  // Starts the call; registered already. `authorization` (the request's
  // header, already checked to be valid metadata) goes upstream as metadata;
  // a WatchRequest.secret is sent in-stream as `authenticate`, which
  // replaces it.
  void Run(v1::WatchRequest request, std::string authorization);
  void Shutdown() override;
  void Abort() override;

 private:
  void OnHeaderWritten(beast::error_code error, size_t bytes);
  void WatchForDisconnect();
  void OnUpstreamMessages(LinkMessages messages);
  void HandleUpstream(const LinkMessage& message);
  void OnUpstreamDone(const grpc::Status& status);
  void Send(std::shared_ptr<const std::string> frame);
  void DoWrite();
  void OnWrite(beast::error_code error, size_t bytes);
  // Ends the call with `status` after the queued frames.
  void End(const grpc::Status& status);
  void Finish();

  HttpStream stream_;
  GatewayState* const state_;
  const GrpcWebFormat format_;
  const std::string origin_;
  net::steady_timer write_timer_;
  // Ends the call once it is older than the options' max_connection_age.
  net::steady_timer age_timer_;

  // Strand only.
  http::response<http::empty_body> response_;
  std::optional<http::response_serializer<http::empty_body>> serializer_;
  std::shared_ptr<SubscribeLink> upstream_;
  std::deque<std::shared_ptr<const std::string>> out_;
  char probe_[64];
  uint64_t write_generation_ = 0;
  bool header_written_ = false;
  bool writing_ = false;
  bool ending_ = false;
  bool ended_ = false;  // the last chunk is queued
  bool finished_ = false;
  bool upstream_done_ = false;
  bool upstream_waiting_ = false;
};

}  // namespace gateway
}  // namespace entitysync

#endif  // ENTITYSYNC_ADAPTERS_GATEWAY_GRPC_WEB_CALL_H_
