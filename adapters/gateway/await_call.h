// AwaitHttpCall is one long poll over plain HTTP, `GET /v1/await?entity=..&
// id=..[&after_version=N][&timeout_ms=N]` (PROTOCOL.md, "Long poll"): it calls
// the service's EntitySync.Await (a callback unary call on a channel of the
// UpstreamPool, with the request's authorization header as metadata) and
// answers with the enveloped update JSON, a `timeout` object, or an error
// object with the HTTP status of the gRPC code. A read kept open on the
// socket notices a client that goes away and cancels the upstream call.
// After the answer a keep-alive connection goes back to a new HttpSession,
// with whatever the client pipelined meanwhile.
//
// Threading: everything but the upstream completion runs on the
// connection's strand; the completion is posted there.
#ifndef ENTITYSYNC_ADAPTERS_GATEWAY_AWAIT_CALL_H_
#define ENTITYSYNC_ADAPTERS_GATEWAY_AWAIT_CALL_H_

#include <cstddef>
#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "adapters/gateway/beast.h"
#include "adapters/gateway/gateway_state.h"
#include "adapters/gateway/gateway_stream.h"
#include "entitysync/v1/entitysync.grpc.pb.h"
#include "grpcpp/client_context.h"

namespace entitysync {
namespace gateway {

inline constexpr absl::string_view kAwaitPath = "/v1/await";
// Carries the key's version on every 200 answer (exposed to CORS callers).
inline constexpr absl::string_view kVersionHeader = "entitysync-version";

// The AwaitRequest named by a request target's query string. Parameters are
// percent-decoded ('+' is a space); unknown ones are ignored. INVALID_ARGUMENT
// naming the parameter: entity or id missing, bad percent-encoding, id not
// UTF-8, after_version not a uint64, timeout_ms not a uint32.
absl::StatusOr<v1::AwaitRequest> ParseAwaitQuery(absl::string_view target);

// The HTTP status for an upstream gRPC code other than OK.
http::status HttpStatusForGrpc(grpc::StatusCode code);

class AwaitHttpCall : public GatewayConnection,
                      public std::enable_shared_from_this<AwaitHttpCall> {
 public:
  // Takes the connection over from an HttpSession, with its read buffer.
  AwaitHttpCall(HttpStream&& stream, beast::flat_buffer&& buffer,
                GatewayState* state, const HttpRequest& request);

  // Parses the request and calls upstream; answers 400 for bad parameters
  // and 503 at --max_connections. Call on the strand, once.
  void Run(const HttpRequest& request);
  void Shutdown() override;
  void Abort() override;

 private:
  void CallUpstream(std::string authorization);
  void WatchForDisconnect();
  void OnProbe(beast::error_code error, size_t bytes);
  void OnUpstreamDone(const grpc::Status& status);
  // The answer; the first one wins. Written once no probe read is pending.
  void Answer(http::response<http::string_body> response);
  void Write();
  void OnWritten(beast::error_code error, size_t bytes);
  // Closes the socket (the client went away, or the answer was the last).
  void Close();
  http::response<http::string_body> JsonResponse(http::status status,
                                                 std::string body) const;

  HttpStream stream_;
  // The connection's strand, kept apart from stream_: a keep-alive
  // connection's stream moves to a new HttpSession after the answer, while
  // Shutdown (another thread) and the upstream completion still post here.
  const HttpStream::executor_type executor_;
  beast::flat_buffer buffer_;
  GatewayState* const state_;
  const std::string origin_;
  const unsigned http_version_;
  const bool keep_alive_;

  // Strand only.
  v1::AwaitRequest request_;
  bool registered_ = false;
  bool upstream_started_ = false;
  bool probe_pending_ = false;
  bool answered_ = false;
  bool closed_ = false;
  std::shared_ptr<http::response<http::string_body>> response_;

  // Used by the upstream call until its completion.
  grpc::ClientContext context_;
  v1::AwaitResponse upstream_response_;
  size_t slot_ = 0;
};

}  // namespace gateway
}  // namespace entitysync

#endif  // ENTITYSYNC_ADAPTERS_GATEWAY_AWAIT_CALL_H_
