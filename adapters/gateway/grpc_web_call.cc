#include "adapters/gateway/grpc_web_call.h"

#include <chrono>
#include <utility>

namespace entitysync {
namespace gateway {

void SetCorsHeaders(absl::string_view origin,
                    http::response_header<>* headers) {
  if (origin.empty()) return;
  headers->set(http::field::access_control_allow_origin,
               beast::string_view(origin.data(), origin.size()));
  headers->set(http::field::vary, "Origin");
  headers->set(http::field::access_control_expose_headers,
               "grpc-status,grpc-message");
}

GrpcWebCall::GrpcWebCall(HttpStream&& stream, GatewayState* state,
                         GrpcWebFormat format, std::string origin)
    : stream_(std::move(stream)),
      state_(state),
      format_(format),
      origin_(std::move(origin)),
      write_timer_(stream_.get_executor()),
      age_timer_(stream_.get_executor()) {}

void GrpcWebCall::Run(v1::WatchRequest request, std::string authorization) {
  stream_.expires_never();
  response_.version(11);
  response_.result(http::status::ok);
  response_.set(http::field::server, "entitysync-gateway");
  absl::string_view type = GrpcWebContentType(format_);
  response_.set(http::field::content_type,
                beast::string_view(type.data(), type.size()));
  response_.set(http::field::cache_control, "no-cache");
  SetCorsHeaders(origin_, &response_.base());
  response_.keep_alive(false);
  response_.chunked(true);
  serializer_.emplace(response_);
  http::async_write_header(
      stream_, *serializer_,
      beast::bind_front_handler(&GrpcWebCall::OnHeaderWritten,
                                shared_from_this()));

  std::shared_ptr<GrpcWebCall> self = shared_from_this();
  SubscribeLink::Events events;
  events.on_message = [self](LinkMessages messages) {
    net::post(self->stream_.get_executor(),
              [self, messages = std::move(messages)]() mutable {
                self->OnUpstreamMessages(std::move(messages));
              });
  };
  events.on_write_cancelled = [self] {
    // Nothing more can reach a browser that stopped reading.
    net::post(self->stream_.get_executor(), [self] { self->Finish(); });
  };
  events.on_done = [self](const grpc::Status& status) {
    net::post(self->stream_.get_executor(),
              [self, status] { self->OnUpstreamDone(status); });
  };
  upstream_ =
      state_->links(authorization, stream_.get_executor(), std::move(events));
  if (state_->options.max_connection_age > absl::ZeroDuration()) {
    // As a WebSocket is closed with 1012: the browser calls again, maybe on
    // another replica.
    age_timer_.expires_after(
        absl::ToChronoNanoseconds(state_->options.SpreadConnectionAge()));
    age_timer_.async_wait([self = shared_from_this()](beast::error_code e) {
      if (e) return;
      self->End(
          grpc::Status(grpc::StatusCode::UNAVAILABLE,
                       "the Watch is older than its maximum age; call again"));
    });
  }
  // The secret goes in-stream: it may hold any UTF-8, which metadata cannot.
  if (!request.secret().empty()) {
    v1::SubscribeRequest authenticate;
    authenticate.mutable_authenticate()->set_secret(request.secret());
    upstream_->Write(std::move(authenticate));
  }
  for (int i = 0; i < request.keys_size(); ++i) {
    v1::SubscribeRequest subscribe;
    subscribe.set_request_id(static_cast<uint64_t>(i) + 1);
    *subscribe.mutable_subscribe()->mutable_key() = request.keys(i).key();
    subscribe.mutable_subscribe()->set_known_version(
        request.keys(i).known_version());
    upstream_->Write(std::move(subscribe));
  }
}

void GrpcWebCall::Shutdown() {
  net::post(stream_.get_executor(), [self = shared_from_this()] {
    self->End(grpc::Status(grpc::StatusCode::UNAVAILABLE,
                           "entitysync-gateway is shutting down; call again"));
  });
}

void GrpcWebCall::OnHeaderWritten(beast::error_code error, size_t) {
  if (error) {
    Finish();
    return;
  }
  header_written_ = true;
  WatchForDisconnect();
  if (!writing_ && (!out_.empty() || ended_)) DoWrite();
}

void GrpcWebCall::WatchForDisconnect() {
  // The browser sends nothing more on this connection; anything that
  // completes this read means it is gone (or misbehaving).
  stream_.async_read_some(net::buffer(probe_), [self = shared_from_this()](
                                                   beast::error_code, size_t) {
    if (self->ended_) return;
    self->Finish();
  });
}

void GrpcWebCall::OnUpstreamMessages(LinkMessages messages) {
  for (const LinkMessage& message : messages) {
    if (ending_ || finished_ || upstream_ == nullptr) return;
    HandleUpstream(message);
  }
  if (ending_ || finished_ || upstream_ == nullptr) return;
  if (out_.empty() && !writing_) {
    upstream_->ReadNext();
  } else {
    upstream_waiting_ = true;
  }
}

void GrpcWebCall::HandleUpstream(const LinkMessage& message) {
  const v1::SubscribeResponse& response = message.response();
  if (response.has_goaway()) {
    End(grpc::Status(grpc::StatusCode::UNAVAILABLE,
                     "the entitysync replica is draining; call again"));
    return;
  }
  // The answer to the gateway's own `authenticate` (request 0; the keys
  // are 1..n): taken here, not passed on. A refused secret (e.g. over the
  // credential limit) ends the call with that error rather than watching
  // without it.
  // A key listed twice in one WatchRequest: the first subscribe is
  // superseded by the second, whose answer follows; a Watch has no request
  // ids to answer, so the superseded error is not passed on.
  if (response.has_authenticated() ||
      (response.has_error() && response.error().superseded())) {
    return;
  }
  if (response.has_error() && response.error().request_id() == 0 &&
      !response.error().has_key()) {
    End(grpc::Status(static_cast<grpc::StatusCode>(response.error().code()),
                     response.error().message()));
    return;
  }
  Send(message.GrpcWebFrame(format_));
}

void GrpcWebCall::OnUpstreamDone(const grpc::Status& status) {
  upstream_done_ = true;
  // The stream's events hold this call; dropping the stream ends that cycle.
  upstream_.reset();
  if (status.ok()) {
    End(grpc::Status(grpc::StatusCode::UNAVAILABLE,
                     "the entitysync stream ended; call again"));
  } else {
    End(status);
  }
}

void GrpcWebCall::Send(std::shared_ptr<const std::string> frame) {
  if (ended_ || finished_) return;
  out_.push_back(std::move(frame));
  if (header_written_ && !writing_) DoWrite();
}

void GrpcWebCall::DoWrite() {
  if (finished_) return;
  write_timer_.expires_after(
      absl::ToChronoNanoseconds(state_->options.write_timeout));
  const uint64_t generation = ++write_generation_;
  write_timer_.async_wait(
      [self = shared_from_this(), generation](beast::error_code e) {
        // A handler already queued when its write completed is stale.
        if (e || generation != self->write_generation_ || !self->writing_) {
          return;
        }
        self->stream_.close();
      });
  writing_ = true;
  auto on_write =
      beast::bind_front_handler(&GrpcWebCall::OnWrite, shared_from_this());
  if (out_.empty()) {
    // Only reached once ended_: the terminating chunk.
    net::async_write(stream_, http::make_chunk_last(), std::move(on_write));
    return;
  }
  net::async_write(stream_, http::make_chunk(net::buffer(*out_.front())),
                   std::move(on_write));
}

void GrpcWebCall::OnWrite(beast::error_code error, size_t) {
  write_timer_.cancel();
  writing_ = false;
  if (error) {
    Finish();
    return;
  }
  if (out_.empty()) {
    // The terminating chunk went out.
    Finish();
    return;
  }
  out_.pop_front();
  if (!out_.empty() || ended_) {
    DoWrite();
  } else if (upstream_waiting_ && upstream_ != nullptr) {
    upstream_waiting_ = false;
    upstream_->ReadNext();
  }
}

void GrpcWebCall::End(const grpc::Status& status) {
  if (ending_ || finished_) return;
  ending_ = true;
  if (upstream_ != nullptr && !upstream_done_) upstream_->Cancel();
  out_.push_back(std::make_shared<const std::string>(
      EncodeGrpcWebTrailers(status, format_)));
  ended_ = true;
  if (header_written_ && !writing_) DoWrite();
}

void GrpcWebCall::Finish() {
  if (finished_) return;
  finished_ = true;
  ended_ = true;
  write_timer_.cancel();
  age_timer_.cancel();
  if (upstream_ != nullptr && !upstream_done_) upstream_->Cancel();
  beast::error_code ignored;
  stream_.socket().shutdown(tcp::socket::shutdown_both, ignored);
  stream_.close();
  state_->connections.Remove(this);
}

void GrpcWebCall::Abort() {
  if (upstream_ != nullptr && !upstream_done_) upstream_->Cancel();
  upstream_.reset();
  stream_.close();
}

}  // namespace gateway
}  // namespace entitysync
