#include "adapters/gateway/http_session.h"

#include <chrono>
#include <utility>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "adapters/gateway/await_call.h"
#include "adapters/gateway/grpc_web_call.h"
#include "adapters/gateway/grpc_web_codec.h"
#include "adapters/gateway/upstream.h"
#include "adapters/gateway/ws_codec.h"
#include "adapters/gateway/ws_session.h"
#include "entitysync/v1/gateway.pb.h"

namespace entitysync {
namespace gateway {
namespace {

constexpr absl::string_view kWatchPath = "/entitysync.v1.EntitySyncWeb/Watch";

absl::string_view View(beast::string_view s) { return {s.data(), s.size()}; }

bool IsWebSocketPath(absl::string_view target) {
  absl::string_view path = target.substr(0, target.find('?'));
  return path == "/ws/entity-sync/" || path == "/ws/entity-sync";
}

}  // namespace

HttpSession::HttpSession(tcp::socket&& socket, GatewayState* state)
    : stream_(std::move(socket), state->tls.get()),
      state_(state),
      handshake_(stream_.tls()) {
  ++state_->http_sessions;
}

HttpSession::HttpSession(HttpStream&& stream, beast::flat_buffer&& buffer,
                         GatewayState* state)
    : stream_(std::move(stream)), state_(state), buffer_(std::move(buffer)) {
  ++state_->http_sessions;
}

HttpSession::~HttpSession() { --state_->http_sessions; }

void HttpSession::Run() {
  net::dispatch(stream_.get_executor(), [self = shared_from_this()] {
    if (!self->handshake_) {
      self->DoRead();
      return;
    }
    self->stream_.expires_after(std::chrono::seconds(10));
    self->stream_.async_handshake(
        beast::bind_front_handler(&HttpSession::OnHandshake, self));
  });
}

void HttpSession::OnHandshake(beast::error_code error) {
  handshake_ = false;
  // Not TLS, a certificate refused, or too slow: nothing to answer.
  if (error) return;
  DoRead();
}

void HttpSession::DoRead() {
  parser_.emplace();
  parser_->header_limit(16 << 10);
  parser_->body_limit(state_->options.max_message_bytes);
  stream_.expires_after(
      absl::ToChronoNanoseconds(state_->options.request_timeout));
  http::async_read(
      stream_, buffer_, *parser_,
      beast::bind_front_handler(&HttpSession::OnRead, shared_from_this()));
}

void HttpSession::OnRead(beast::error_code error, size_t) {
  if (error == http::error::end_of_stream || error == beast::error::timeout) {
    beast::error_code ignored;
    stream_.socket().shutdown(tcp::socket::shutdown_send, ignored);
    return;
  }
  if (error == http::error::body_limit) {
    HttpRequest request;
    request.version(11);
    auto response = Plain(request, http::status::payload_too_large,
                          "request body over --max_message_bytes\n");
    response.keep_alive(false);
    Respond(std::move(response));
    return;
  }
  if (error) {
    // A TLS browser that hangs up without close_notify (common on an idle
    // keep-alive connection) is no malformed request either.
    if (error != net::error::operation_aborted &&
        error != net::error::connection_reset && error != net::error::eof &&
        error != ssl::error::stream_truncated) {
      HttpRequest request;
      request.version(11);
      auto response = Plain(
          request, http::status::bad_request,
          absl::StrCat("malformed HTTP request: ", error.message(), "\n"));
      response.keep_alive(false);
      Respond(std::move(response));
    }
    return;
  }
  Route(parser_->release());
}

void HttpSession::Route(HttpRequest request) {
  const absl::string_view target = View(request.target());
  const absl::string_view origin = View(request[http::field::origin]);
  const absl::string_view host = View(request[http::field::host]);
  if (!IsValidMetadataValue(View(request[http::field::authorization]))) {
    Respond(Plain(request, http::status::bad_request,
                  "the authorization header may hold printable ASCII only\n"));
    return;
  }
  if (websocket::is_upgrade(request)) {
    if (!IsWebSocketPath(target)) {
      Respond(Plain(request, http::status::not_found,
                    "WebSockets are served at /ws/entity-sync/\n"));
      return;
    }
    if (!state_->OriginAllowed(origin, host)) {
      Respond(Plain(request, http::status::forbidden,
                    "origin not allowed (--allowed_origins)\n"));
      return;
    }
    Upgrade(std::move(request));
    return;
  }
  if (request.method() == http::verb::options) {
    if (!state_->OriginAllowed(origin, host)) {
      Respond(Plain(request, http::status::forbidden,
                    "origin not allowed (--allowed_origins)\n"));
      return;
    }
    http::response<http::string_body> response{http::status::no_content,
                                               request.version()};
    response.set(http::field::server, "entitysync-gateway");
    SetCorsHeaders(origin, &response.base());
    response.set(http::field::access_control_allow_methods,
                 "GET, POST, OPTIONS");
    response.set(http::field::access_control_allow_headers,
                 "content-type,x-grpc-web,x-user-agent,authorization,"
                 "grpc-timeout,connect-protocol-version,connect-timeout-ms");
    response.set(http::field::access_control_max_age, "86400");
    response.keep_alive(request.keep_alive());
    Respond(std::move(response));
    return;
  }
  if (target == kWatchPath) {
    if (request.method() != http::verb::post) {
      auto response = Plain(request, http::status::method_not_allowed,
                            "grpc-web calls are POST\n");
      response.set(http::field::allow, "POST, OPTIONS");
      Respond(std::move(response));
      return;
    }
    if (!state_->OriginAllowed(origin, host)) {
      Respond(Plain(request, http::status::forbidden,
                    "origin not allowed (--allowed_origins)\n"));
      return;
    }
    Watch(std::move(request));
    return;
  }
  if (target.substr(0, target.find('?')) == kAwaitPath) {
    if (request.method() != http::verb::get) {
      auto response = Plain(request, http::status::method_not_allowed,
                            "the long poll is GET /v1/await\n");
      response.set(http::field::allow, "GET");
      Respond(std::move(response));
      return;
    }
    if (!state_->OriginAllowed(origin, host)) {
      Respond(Plain(request, http::status::forbidden,
                    "origin not allowed (--allowed_origins)\n"));
      return;
    }
    Await(std::move(request));
    return;
  }
  if (request.method() != http::verb::get) {
    auto response = Plain(request, http::status::method_not_allowed,
                          "method not allowed\n");
    response.set(http::field::allow, "GET");
    Respond(std::move(response));
    return;
  }
  if (target == "/healthz") {
    Respond(Plain(request, http::status::ok, "ok\n"));
    return;
  }
  absl::StatusOr<StaticFile> file = state_->static_files.Get(target);
  if (!file.ok()) {
    Respond(Plain(request,
                  absl::IsInvalidArgument(file.status())
                      ? http::status::bad_request
                      : http::status::not_found,
                  "not found\n"));
    return;
  }
  auto response = Plain(request, http::status::ok, std::move(file->body));
  response.set(http::field::content_type, file->content_type);
  response.set(http::field::cache_control, "no-cache");
  Respond(std::move(response));
}

void HttpSession::Upgrade(HttpRequest request) {
  std::string subprotocol;
  const WsMode mode = ChooseMode(
      View(request[http::field::sec_websocket_protocol]), &subprotocol);
  if (state_->connections.full()) {
    Respond(Plain(request, http::status::service_unavailable,
                  "too many connections (--max_connections)\n"));
    return;
  }
  auto session = std::make_shared<WsSession>(std::move(stream_), state_, mode,
                                             subprotocol);
  // Lost a race for the last place (or the gateway is stopping): dropping
  // the session closes the socket.
  if (!state_->connections.TryAdd(session)) return;
  session->Run(std::move(request));
}

void HttpSession::Watch(HttpRequest request) {
  const std::string origin(View(request[http::field::origin]));
  absl::StatusOr<GrpcWebFormat> format =
      GrpcWebFormatFor(View(request[http::field::content_type]));
  grpc::Status refused;
  v1::WatchRequest watch;
  if (!format.ok()) {
    Respond(Plain(request, http::status::unsupported_media_type,
                  std::string(format.status().message()) + "\n"));
    return;
  }
  absl::StatusOr<std::string> message =
      DecodeGrpcWebRequest(request.body(), *format);
  if (!message.ok()) {
    refused = grpc::Status(grpc::StatusCode::INVALID_ARGUMENT,
                           std::string(message.status().message()));
  } else if (!watch.ParseFromString(*message)) {
    refused = grpc::Status(grpc::StatusCode::INVALID_ARGUMENT,
                           "the request is not an entitysync.v1.WatchRequest");
  } else if (watch.keys_size() == 0) {
    refused = grpc::Status(grpc::StatusCode::INVALID_ARGUMENT,
                           "WatchRequest.keys is empty");
  } else if (static_cast<size_t>(watch.keys_size()) >
             state_->options.max_subscriptions) {
    refused = grpc::Status(grpc::StatusCode::RESOURCE_EXHAUSTED,
                           absl::StrCat("WatchRequest has ", watch.keys_size(),
                                        " keys; the gateway allows ",
                                        state_->options.max_subscriptions,
                                        " (--max_subscriptions)"));
  }
  if (refused.ok() && state_->connections.full()) {
    refused = grpc::Status(grpc::StatusCode::RESOURCE_EXHAUSTED,
                           "too many connections (--max_connections)");
  }
  std::shared_ptr<GrpcWebCall> call;
  if (refused.ok()) {
    call = std::make_shared<GrpcWebCall>(std::move(stream_), state_, *format,
                                         origin);
    if (!state_->connections.TryAdd(call)) return;
  }
  if (call != nullptr) {
    call->Run(std::move(watch),
              std::string(View(request[http::field::authorization])));
    return;
  }
  // Trailers-only: the status in the headers, no body.
  auto response = Plain(request, http::status::ok, "");
  response.set(http::field::content_type,
               std::string(GrpcWebContentType(*format)));
  response.set("grpc-status",
               std::to_string(static_cast<int>(refused.error_code())));
  response.set("grpc-message",
               PercentEncodeGrpcMessage(refused.error_message()));
  SetCorsHeaders(origin, &response.base());
  Respond(std::move(response));
}

void HttpSession::Await(HttpRequest request) {
  auto call = std::make_shared<AwaitHttpCall>(
      std::move(stream_), std::move(buffer_), state_, request);
  call->Run(request);
}

http::response<http::string_body> HttpSession::Plain(const HttpRequest& request,
                                                     http::status status,
                                                     std::string body) const {
  http::response<http::string_body> response{status, request.version()};
  response.set(http::field::server, "entitysync-gateway");
  response.set(http::field::content_type, "text/plain; charset=utf-8");
  response.keep_alive(request.keep_alive());
  response.body() = std::move(body);
  response.prepare_payload();
  return response;
}

void HttpSession::Respond(http::response<http::string_body> response) {
  response_ =
      std::make_shared<http::response<http::string_body>>(std::move(response));
  response_->prepare_payload();
  http::async_write(
      stream_, *response_,
      [self = shared_from_this()](beast::error_code error, size_t) {
        if (error || !self->response_->keep_alive()) {
          beast::error_code ignored;
          self->stream_.socket().shutdown(tcp::socket::shutdown_send, ignored);
          return;
        }
        self->response_.reset();
        self->DoRead();
      });
}

}  // namespace gateway
}  // namespace entitysync
