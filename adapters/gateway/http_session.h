// HttpSession reads HTTP/1.1 requests on one accepted connection and routes
// them: a WebSocket upgrade at /ws/entity-sync/ becomes a WsSession, a
// grpc-web Watch becomes a GrpcWebCall, a GET /v1/await an AwaitHttpCall
// (all take the socket over; the long poll hands it back), CORS
// preflights, /healthz and static files are answered here, keep-alive.
// Requests over --max_message_bytes, slow senders (30 s per request,
// GatewayOptions::request_timeout) and
// malformed HTTP end the connection with an error status. On a TLS port the
// handshake comes first (10 s); a failed one closes the connection.
//
// Threading: runs on the connection's strand.
#ifndef ENTITYSYNC_ADAPTERS_GATEWAY_HTTP_SESSION_H_
#define ENTITYSYNC_ADAPTERS_GATEWAY_HTTP_SESSION_H_

#include <memory>
#include <optional>
#include <string>

#include "adapters/gateway/beast.h"
#include "adapters/gateway/gateway_state.h"
#include "adapters/gateway/gateway_stream.h"

namespace entitysync {
namespace gateway {

class HttpSession : public std::enable_shared_from_this<HttpSession> {
 public:
  HttpSession(tcp::socket&& socket, GatewayState* state);
  // A keep-alive connection handed back (after a long poll) with the bytes
  // already read from it.
  HttpSession(HttpStream&& stream, beast::flat_buffer&& buffer,
              GatewayState* state);
  ~HttpSession();
  void Run();

 private:
  void OnHandshake(beast::error_code error);
  void DoRead();
  void OnRead(beast::error_code error, size_t bytes);
  void Route(HttpRequest request);
  void Upgrade(HttpRequest request);
  void Watch(HttpRequest request);
  void Await(HttpRequest request);
  // Writes a plain response; closes afterwards unless keep-alive.
  void Respond(http::response<http::string_body> response);
  http::response<http::string_body> Plain(const HttpRequest& request,
                                          http::status status,
                                          std::string body) const;

  HttpStream stream_;
  GatewayState* const state_;
  bool handshake_ = false;  // a TLS connection just accepted
  beast::flat_buffer buffer_;
  std::optional<http::request_parser<http::string_body>> parser_;
  std::shared_ptr<http::response<http::string_body>> response_;
};

}  // namespace gateway
}  // namespace entitysync

#endif  // ENTITYSYNC_ADAPTERS_GATEWAY_HTTP_SESSION_H_
