#include "adapters/gateway/await_call.h"

#include <chrono>
#include <utility>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "adapters/gateway/grpc_web_call.h"
#include "adapters/gateway/http_session.h"
#include "adapters/gateway/upstream.h"
#include "adapters/gateway/ws_codec.h"
#include "common/utf8.h"
#include "nlohmann/json.hpp"

namespace entitysync {
namespace gateway {
namespace {

using Json = nlohmann::json;

// Largest integer a JavaScript number holds exactly (as in ws_codec).
constexpr uint64_t kMaxSafeInteger = (uint64_t{1} << 53) - 1;

// The upstream call's own deadline is only a safety net: the service
// answers by its --await_max_timeout.
constexpr absl::Duration kDeadlineSlack = absl::Minutes(5);
constexpr absl::Duration kDeadlineWithoutTimeout = absl::Minutes(15);

absl::string_view View(beast::string_view s) { return {s.data(), s.size()}; }

int HexValue(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

absl::StatusOr<std::string> PercentDecode(absl::string_view text,
                                          absl::string_view name) {
  std::string out;
  out.reserve(text.size());
  for (size_t i = 0; i < text.size(); ++i) {
    const char c = text[i];
    if (c == '+') {
      out.push_back(' ');
    } else if (c != '%') {
      out.push_back(c);
    } else {
      const bool complete = i + 2 < text.size();
      const int high = complete ? HexValue(text[i + 1]) : -1;
      const int low = complete ? HexValue(text[i + 2]) : -1;
      if (high < 0 || low < 0) {
        return absl::InvalidArgumentError(absl::StrCat(
            "query parameter \"", name, "\" has a bad percent-encoding"));
      }
      out.push_back(static_cast<char>(high * 16 + low));
      i += 2;
    }
  }
  return out;
}

std::string Quote(absl::string_view text) {
  return Json(std::string(text))
      .dump(-1, ' ', false, Json::error_handler_t::replace);
}

std::string VersionJson(uint64_t version) {
  if (version <= kMaxSafeInteger) return absl::StrCat(version);
  return absl::StrCat("\"", version, "\"");
}

std::string TimeoutJson(const v1::Update& update) {
  return absl::StrCat("{\"type\":\"timeout\",\"key\":{\"entity\":",
                      Quote(update.key().entity()),
                      ",\"id\":", Quote(update.key().id()),
                      "},\"version\":", VersionJson(update.version()), "}");
}

}  // namespace

absl::StatusOr<v1::AwaitRequest> ParseAwaitQuery(absl::string_view target) {
  const size_t question = target.find('?');
  const absl::string_view query =
      question == absl::string_view::npos ? "" : target.substr(question + 1);
  v1::AwaitRequest request;
  bool has_entity = false;
  bool has_id = false;
  for (absl::string_view pair : absl::StrSplit(query, '&', absl::SkipEmpty())) {
    const size_t eq = pair.find('=');
    const absl::string_view name = pair.substr(0, eq);
    const absl::string_view raw =
        eq == absl::string_view::npos ? "" : pair.substr(eq + 1);
    absl::StatusOr<std::string> value = PercentDecode(raw, name);
    if (!value.ok()) return value.status();
    if (name == "entity" || name == "id") {
      if (!IsValidUtf8(*value)) {
        return absl::InvalidArgumentError(
            absl::StrCat("query parameter \"", name, "\" is not UTF-8"));
      }
      if (name == "entity") {
        request.mutable_key()->set_entity(*std::move(value));
        has_entity = true;
      } else {
        request.mutable_key()->set_id(*std::move(value));
        has_id = true;
      }
    } else if (name == "after_version") {
      uint64_t version = 0;
      if (value->empty() || value->front() == '-' || value->front() == '+' ||
          !absl::SimpleAtoi(*value, &version)) {
        return absl::InvalidArgumentError(
            "query parameter \"after_version\" must be an integer from 0 to "
            "2^64-1");
      }
      request.set_after_version(version);
    } else if (name == "timeout_ms") {
      uint32_t timeout = 0;
      if (value->empty() || value->front() == '-' || value->front() == '+' ||
          !absl::SimpleAtoi(*value, &timeout)) {
        return absl::InvalidArgumentError(
            "query parameter \"timeout_ms\" must be an integer from 0 to "
            "2^32-1");
      }
      request.set_timeout_ms(timeout);
    }
  }
  if (!has_entity || !has_id) {
    return absl::InvalidArgumentError(
        "query parameters \"entity\" and \"id\" are required, e.g. "
        "/v1/await?entity=items&id=100&after_version=7");
  }
  return request;
}

http::status HttpStatusForGrpc(grpc::StatusCode code) {
  switch (code) {
    case grpc::StatusCode::INVALID_ARGUMENT:
    case grpc::StatusCode::OUT_OF_RANGE:
    case grpc::StatusCode::FAILED_PRECONDITION:
      return http::status::bad_request;
    case grpc::StatusCode::UNAUTHENTICATED:
      return http::status::unauthorized;
    case grpc::StatusCode::PERMISSION_DENIED:
      return http::status::forbidden;
    case grpc::StatusCode::NOT_FOUND:
      return http::status::not_found;
    case grpc::StatusCode::RESOURCE_EXHAUSTED:
      return http::status::too_many_requests;
    case grpc::StatusCode::UNAVAILABLE:
      return http::status::service_unavailable;
    case grpc::StatusCode::DEADLINE_EXCEEDED:
      return http::status::gateway_timeout;
    case grpc::StatusCode::UNIMPLEMENTED:
      return http::status::not_implemented;
    default:
      return http::status::bad_gateway;
  }
}

AwaitHttpCall::AwaitHttpCall(HttpStream&& stream, beast::flat_buffer&& buffer,
                             GatewayState* state, const HttpRequest& request)
    : stream_(std::move(stream)),
      executor_(stream_.get_executor()),
      buffer_(std::move(buffer)),
      state_(state),
      origin_(View(request[http::field::origin])),
      http_version_(request.version()),
      keep_alive_(request.keep_alive()) {}

void AwaitHttpCall::Run(const HttpRequest& request) {
  absl::StatusOr<v1::AwaitRequest> parsed =
      ParseAwaitQuery(View(request.target()));
  if (!parsed.ok()) {
    Answer(JsonResponse(http::status::bad_request,
                        EncodeErrorJson(0, parsed.status(), nullptr)));
    return;
  }
  request_ = *std::move(parsed);
  // A long poll holds the connection like a WebSocket does: it counts
  // against --max_connections and is ended by Gateway::Stop.
  if (!state_->connections.TryAdd(shared_from_this())) {
    auto response = JsonResponse(
        http::status::service_unavailable,
        EncodeErrorJson(
            0,
            absl::UnavailableError("too many connections (--max_connections)"),
            nullptr));
    response.keep_alive(false);
    Answer(std::move(response));
    return;
  }
  registered_ = true;
  CallUpstream(std::string(View(request[http::field::authorization])));
  WatchForDisconnect();
}

void AwaitHttpCall::CallUpstream(std::string authorization) {
  std::shared_ptr<grpc::Channel> channel = state_->upstream.Acquire(&slot_);
  upstream_started_ = true;
  // Checked by HttpSession (IsValidMetadataValue) before routing.
  if (!authorization.empty()) {
    context_.AddMetadata("authorization", authorization);
  }
  const absl::Duration wait =
      request_.timeout_ms() == 0
          ? kDeadlineWithoutTimeout
          : absl::Milliseconds(request_.timeout_ms()) + kDeadlineSlack;
  context_.set_deadline(absl::ToChronoTime(absl::Now() + wait));
  v1::EntitySync::NewStub(channel)->async()->Await(
      &context_, &request_, &upstream_response_,
      [self = shared_from_this()](grpc::Status status) mutable {
        GatewayState* state = self->state_;
        const size_t slot = self->slot_;
        net::post(self->executor_,
                  [self, status] { self->OnUpstreamDone(status); });
        // The pool counts the call until nothing of it is held here: the
        // gateway frees its io_context and the pool once the count is 0.
        self.reset();
        state->upstream.Release(slot);
      });
}

void AwaitHttpCall::WatchForDisconnect() {
  if (closed_ || answered_) return;
  // Waiting may take minutes: no idle timeout while the probe is open.
  stream_.expires_never();
  probe_pending_ = true;
  stream_.async_read_some(
      buffer_.prepare(4096),
      beast::bind_front_handler(&AwaitHttpCall::OnProbe, shared_from_this()));
}

void AwaitHttpCall::OnProbe(beast::error_code error, size_t bytes) {
  probe_pending_ = false;
  // Bytes here are the client's next (pipelined) request: kept for the
  // HttpSession that takes the connection back.
  buffer_.commit(bytes);
  if (closed_) return;
  if (answered_) {
    Write();
    return;
  }
  if (error && error != net::error::operation_aborted) {
    // The client went away: nobody waits for the answer.
    context_.TryCancel();
    Close();
  }
  // Otherwise the client sent more: it is still there. Stop watching, so
  // that its pipelined bytes stay unread until the answer is out.
}

void AwaitHttpCall::OnUpstreamDone(const grpc::Status& status) {
  if (closed_ || answered_) return;
  if (!status.ok()) {
    auto response = JsonResponse(
        HttpStatusForGrpc(status.error_code()),
        EncodeErrorJson(
            0,
            absl::Status(static_cast<absl::StatusCode>(status.error_code()),
                         status.error_message()),
            &request_.key()));
    if (status.error_code() == grpc::StatusCode::UNAVAILABLE ||
        status.error_code() == grpc::StatusCode::RESOURCE_EXHAUSTED) {
      response.set(http::field::retry_after, "1");
    }
    Answer(std::move(response));
    return;
  }
  const v1::Update& update = upstream_response_.update();
  std::string body;
  if (upstream_response_.timed_out()) {
    body = TimeoutJson(update);
  } else {
    v1::SubscribeResponse as_update;
    *as_update.mutable_update() = update;
    std::vector<WsFrame> frames = EncodeResponse(as_update, WsMode::kEnveloped);
    body = frames.empty() ? "{}" : std::move(frames.front().data);
  }
  auto response = JsonResponse(http::status::ok, std::move(body));
  response.set(beast::string_view(kVersionHeader.data(), kVersionHeader.size()),
               absl::StrCat(update.version()));
  Answer(std::move(response));
}

void AwaitHttpCall::Answer(http::response<http::string_body> response) {
  if (answered_ || closed_) return;
  answered_ = true;
  response_ =
      std::make_shared<http::response<http::string_body>>(std::move(response));
  response_->prepare_payload();
  if (probe_pending_) {
    // OnProbe writes once the read has stopped.
    beast::error_code ignored;
    stream_.socket().cancel(ignored);
    return;
  }
  Write();
}

void AwaitHttpCall::Write() {
  stream_.expires_after(
      absl::ToChronoNanoseconds(state_->options.write_timeout));
  http::async_write(
      stream_, *response_,
      beast::bind_front_handler(&AwaitHttpCall::OnWritten, shared_from_this()));
}

void AwaitHttpCall::OnWritten(beast::error_code error, size_t) {
  if (closed_) return;
  if (error || !response_->keep_alive()) {
    Close();
    return;
  }
  closed_ = true;
  if (registered_) state_->connections.Remove(this);
  registered_ = false;
  // Keep-alive: the connection goes back to serving requests.
  std::make_shared<HttpSession>(std::move(stream_), std::move(buffer_), state_)
      ->Run();
}

void AwaitHttpCall::Close() {
  if (closed_) return;
  closed_ = true;
  beast::error_code ignored;
  stream_.socket().shutdown(tcp::socket::shutdown_both, ignored);
  stream_.close();
  if (registered_) state_->connections.Remove(this);
  registered_ = false;
}

void AwaitHttpCall::Shutdown() {
  net::post(executor_, [self = shared_from_this()] {
    if (self->closed_ || self->answered_) return;
    if (self->upstream_started_) self->context_.TryCancel();
    auto response = self->JsonResponse(
        http::status::service_unavailable,
        EncodeErrorJson(0,
                        absl::UnavailableError(
                            "entitysync-gateway is shutting down; call again"),
                        &self->request_.key()));
    response.keep_alive(false);
    self->Answer(std::move(response));
  });
}

void AwaitHttpCall::Abort() {
  if (upstream_started_) context_.TryCancel();
  stream_.close();
}

http::response<http::string_body> AwaitHttpCall::JsonResponse(
    http::status status, std::string body) const {
  http::response<http::string_body> response{status, http_version_};
  response.set(http::field::server, "entitysync-gateway");
  response.set(http::field::content_type, "application/json");
  response.set(http::field::cache_control, "no-store");
  SetCorsHeaders(origin_, &response.base());
  if (!origin_.empty()) {
    response.set(
        http::field::access_control_expose_headers,
        beast::string_view(kVersionHeader.data(), kVersionHeader.size()));
  }
  response.keep_alive(keep_alive_);
  response.body() = std::move(body);
  return response;
}

}  // namespace gateway
}  // namespace entitysync
