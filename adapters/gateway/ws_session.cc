#include "adapters/gateway/ws_session.h"

#include <algorithm>
#include <chrono>
#include <utility>
#include <vector>

#include "absl/random/random.h"
#include "absl/strings/str_cat.h"
#include "common/utf8.h"

namespace entitysync {
namespace gateway {
namespace {

// Requests waiting to go upstream, and frames waiting to go to the browser,
// beyond which the browser is not read.
constexpr size_t kMaxUpstreamQueued = 16;
constexpr size_t kMaxOutFrames = 64;
// Bytes prepared for the first read of a message.
constexpr size_t kFirstReadBytes = 256;
// A close reason is at most 123 bytes.
constexpr size_t kMaxCloseReasonBytes = 120;

std::chrono::nanoseconds ToChrono(absl::Duration duration) {
  return absl::ToChronoNanoseconds(duration);
}

websocket::close_reason Reason(uint16_t code, absl::string_view text) {
  absl::string_view reason = TruncateUtf8(text, kMaxCloseReasonBytes);
  return websocket::close_reason(
      static_cast<websocket::close_code>(code),
      beast::string_view(reason.data(), reason.size()));
}

}  // namespace

namespace {

// The subprotocol to echo, as one of the constants (a connection keeps no
// string of its own for it).
absl::string_view EchoedSubprotocol(WsMode mode, absl::string_view chosen) {
  if (chosen.empty()) return {};
  switch (mode) {
    case WsMode::kEnveloped:
      return kEnvelopedSubprotocol;
    case WsMode::kBinary:
      return kBinarySubprotocol;
    case WsMode::kLegacy:
      break;
  }
  return kLegacySubprotocol;
}

}  // namespace

WsSession::WsSession(HttpStream&& stream, GatewayState* state, WsMode mode,
                     const std::string& subprotocol)
    // The HTTP stream's timers are not needed any more: the WebSocket has
    // its own timeouts, and the socket alone costs less per connection.
    : ws_(std::move(stream).ForWebSocket()),
      state_(state),
      mode_(mode),
      subprotocol_(EchoedSubprotocol(mode, subprotocol)),
      write_timer_(ws_.get_executor()),
      goaway_timer_(ws_.get_executor()) {}

WsSession::~WsSession() {
  if (upstream_ != nullptr && !upstream_done_) upstream_->Cancel();
}

void WsSession::Run(HttpRequest request) {
  authorization_ = std::string(request[http::field::authorization]);
  websocket::stream_base::timeout timeout;
  timeout.handshake_timeout = std::chrono::seconds(10);
  timeout.idle_timeout = ToChrono(state_->options.idle_timeout);
  timeout.keep_alive_pings = true;
  ws_.set_option(timeout);
  // The limit is applied in OnRead, which can close with a reason; Beast's
  // own limit would fail the connection with a bare 1009.
  ws_.read_message_max(0);
  const absl::string_view subprotocol = subprotocol_;
  ws_.set_option(websocket::stream_base::decorator(
      [subprotocol](websocket::response_type& response) {
        response.set(http::field::server, "entitysync-gateway");
        if (!subprotocol.empty()) {
          response.set(
              http::field::sec_websocket_protocol,
              beast::string_view(subprotocol.data(), subprotocol.size()));
        }
      }));
  ws_.async_accept(request, beast::bind_front_handler(&WsSession::OnAccept,
                                                      shared_from_this()));
}

void WsSession::Shutdown() {
  net::post(ws_.get_executor(), [self = shared_from_this()] {
    if (!self->accepted_) {
      self->Finish();
      return;
    }
    self->CloseAfterFlush(
        Reason(static_cast<uint16_t>(websocket::close_code::going_away),
               "entitysync-gateway is shutting down"));
  });
}

void WsSession::OnAccept(beast::error_code error) {
  if (error || finished_) {
    Finish();
    return;
  }
  accepted_ = true;
  StartUpstream();
  DoRead();
  ArmAgeTimer();
}

void WsSession::ArmAgeTimer() {
  if (state_->options.max_connection_age <= absl::ZeroDuration()) return;
  const absl::Duration after = state_->options.SpreadConnectionAge();
  // The goaway timer: a goaway re-arms it, and then that delay holds.
  goaway_timer_.expires_after(ToChrono(after));
  goaway_timer_.async_wait([self = shared_from_this()](beast::error_code e) {
    if (e) return;
    self->CloseAfterFlush(
        Reason(static_cast<uint16_t>(websocket::close_code::service_restart),
               "connection older than its maximum age; reconnect"));
  });
}

void WsSession::StartUpstream() {
  // The events keep the session alive until the upstream stream is done;
  // Finish always cancels it, so that cycle ends.
  std::shared_ptr<WsSession> self = shared_from_this();
  SubscribeLink::Events events;
  events.on_message = [self](LinkMessages messages) {
    // A link in the replica delivers on this strand: the frames go out from
    // the same task, with no hand-off per browser.
    if (self->OnStrand()) {
      self->OnUpstreamMessages(std::move(messages));
      return;
    }
    net::post(self->ws_.get_executor(),
              [self, messages = std::move(messages)]() mutable {
                self->OnUpstreamMessages(std::move(messages));
              });
  };
  events.on_write_done = [self](size_t queued) {
    net::post(self->ws_.get_executor(),
              [self, queued] { self->OnUpstreamWriteDone(queued); });
  };
  events.on_write_cancelled = [self] {
    // Nothing more can reach a browser that stopped reading.
    net::post(self->ws_.get_executor(), [self] { self->Finish(); });
  };
  events.on_done = [self](const grpc::Status& status) {
    net::post(self->ws_.get_executor(),
              [self, status] { self->OnUpstreamDone(status); });
  };
  upstream_ =
      state_->links(authorization_, ws_.get_executor(), std::move(events));
  // Sent with the stream's opening; an idle connection keeps no copy.
  std::string().swap(authorization_);
}

void WsSession::DoRead() {
  reading_ = true;
  // At most one byte past the limit is ever buffered: enough to know that a
  // message is over it.
  size_t room = state_->options.max_message_bytes + 1 - read_buffer_.size();
  // A message's first read is small: it is what an idle connection holds
  // while it waits (Beast would prepare a whole TCP frame, 1.5 KB), and
  // browser requests fit in it. Larger messages read on in larger steps.
  if (read_buffer_.size() == 0) room = std::min(room, kFirstReadBytes);
  ws_.async_read_some(
      read_buffer_, room,
      beast::bind_front_handler(&WsSession::OnRead, shared_from_this()));
}

void WsSession::OnRead(beast::error_code error, size_t /*bytes*/) {
  reading_ = false;
  if (error) {
    // The browser left, broke the protocol (Beast has sent the close code,
    // e.g. 1007 for invalid UTF-8) or went idle.
    Finish();
    return;
  }
  if (closing_) {
    // Only the browser's close frame matters now; the rest is dropped.
    read_buffer_.consume(read_buffer_.size());
    MaybeResumeRead();
    return;
  }
  const size_t limit = state_->options.max_message_bytes;
  if (read_buffer_.size() > limit) {
    read_buffer_.consume(read_buffer_.size());
    read_buffer_.shrink_to_fit();
    CloseAfterFlush(
        Reason(static_cast<uint16_t>(websocket::close_code::too_big),
               absl::StrCat("message over ", limit,
                            " bytes, the limit (--max_message_bytes)")));
    MaybeResumeRead();
    return;
  }
  if (!ws_.is_message_done()) {
    DoRead();
    return;
  }
  std::string frame = beast::buffers_to_string(read_buffer_.data());
  read_buffer_.consume(read_buffer_.size());
  // Browsers send little and rarely: an idle connection keeps no buffer.
  read_buffer_.shrink_to_fit();
  HandleFrame(ws_.got_binary(), std::move(frame));
  MaybeResumeRead();
}

void WsSession::MaybeResumeRead() {
  if (!accepted_ || reading_ || finished_) return;
  // While closing, reading only waits for the browser's close frame.
  if (!closing_ && (upstream_queued_ >= kMaxUpstreamQueued ||
                    out_.size() - out_head_ >= kMaxOutFrames)) {
    return;
  }
  DoRead();
}

void WsSession::HandleFrame(bool binary, std::string frame) {
  if (closing_) return;
  if (mode_ == WsMode::kBinary) {
    if (!binary) {
      CloseAfterFlush(
          Reason(static_cast<uint16_t>(websocket::close_code::unknown_data),
                 "text frame in binary mode (entitysync.v1.proto); send "
                 "SubscribeRequest messages as binary frames"));
      return;
    }
    v1::SubscribeRequest request;
    if (!request.ParseFromString(frame)) {
      SendError(
          0, absl::InvalidArgumentError("the binary frame is not a serialized "
                                        "entitysync.v1.SubscribeRequest"));
      return;
    }
    Forward(std::move(request));
    return;
  }
  if (binary) {
    CloseAfterFlush(
        Reason(static_cast<uint16_t>(websocket::close_code::unknown_data),
               "binary frame in a JSON mode; send JSON text frames"));
    return;
  }
  uint64_t request_id = 0;
  absl::StatusOr<v1::SubscribeRequest> request =
      ParseClientText(frame, mode_, &request_id);
  if (!request.ok()) {
    SendError(request_id, request.status());
    return;
  }
  Forward(*std::move(request));
}

void WsSession::Forward(v1::SubscribeRequest request) {
  switch (request.kind_case()) {
    case v1::SubscribeRequest::kSubscribe: {
      const v1::EntityKey& key = request.subscribe().key();
      std::pair<std::string, std::string> id{key.entity(), key.id()};
      if (!subscriptions_.contains(id) &&
          subscriptions_.size() >= state_->options.max_subscriptions) {
        SendError(request.request_id(),
                  absl::ResourceExhaustedError(absl::StrCat(
                      "this connection already holds ", subscriptions_.size(),
                      " subscriptions, the most the gateway allows "
                      "(--max_subscriptions)")),
                  &key);
        return;
      }
      subscriptions_.insert(std::move(id));
      break;
    }
    case v1::SubscribeRequest::kUnsubscribe:
      subscriptions_.erase(std::make_pair(request.unsubscribe().key().entity(),
                                          request.unsubscribe().key().id()));
      break;
    case v1::SubscribeRequest::kAuthenticate:
    case v1::SubscribeRequest::kPassthrough:
      break;
    case v1::SubscribeRequest::KIND_NOT_SET:
      SendError(request.request_id(),
                absl::InvalidArgumentError(
                    "the request has none of subscribe, unsubscribe, "
                    "authenticate, passthrough"));
      return;
  }
  if (upstream_ == nullptr) return;  // ended; the close is on its way
  upstream_queued_ = upstream_->Write(std::move(request));
}

void WsSession::SendError(uint64_t request_id, const absl::Status& status,
                          const v1::EntityKey* key) {
  if (mode_ == WsMode::kBinary) {
    v1::SubscribeResponse response;
    v1::Error* error = response.mutable_error();
    error->set_request_id(request_id);
    error->set_code(static_cast<int>(status.code()));
    error->set_message(std::string(status.message()));
    if (key != nullptr) *error->mutable_key() = *key;
    Send({response.SerializeAsString(), true});
    return;
  }
  Send({EncodeErrorJson(request_id, status, key), false});
}

void WsSession::TrackAnswer(const v1::SubscribeResponse& response) {
  // A refused subscribe (or one the service dropped later, e.g. access
  // revoked) no longer counts; ALREADY_EXISTS means it is still held.
  // A superseded subscribe's key is still held through the later request.
  if (!response.has_error() || !response.error().has_key() ||
      response.error().superseded()) {
    return;
  }
  if (static_cast<absl::StatusCode>(response.error().code()) ==
      absl::StatusCode::kAlreadyExists) {
    return;
  }
  subscriptions_.erase(std::make_pair(response.error().key().entity(),
                                      response.error().key().id()));
}

void WsSession::OnUpstreamMessages(LinkMessages messages) {
  if (finished_ || closing_ || upstream_ == nullptr) return;
  for (const LinkMessage& message : messages) {
    if (!HandleUpstream(message)) return;
  }
  // All their frames are queued before the first is written, so they leave
  // together.
  if (out_head_ < out_.size() && !writing_) DoWrite();
  if (out_head_ < out_.size() || writing_) {
    upstream_waiting_ = true;
    return;
  }
  // Nothing to write (a goaway, say). The link may be the caller (its
  // events run on this strand): ask from a task of its own.
  net::post(ws_.get_executor(), [self = shared_from_this()] {
    if (self->upstream_ != nullptr) self->upstream_->ReadNext();
  });
}

bool WsSession::HandleUpstream(const LinkMessage& message) {
  if (finished_ || closing_ || upstream_ == nullptr) return false;
  const v1::SubscribeResponse& response = message.response();
  if (response.has_goaway()) {
    goaway_ = true;
    const uint32_t within = response.goaway().reconnect_within_ms();
    absl::BitGen random;
    const uint32_t delay_ms =
        within == 0 ? 0 : absl::Uniform<uint32_t>(random, 0, within);
    goaway_timer_.expires_after(std::chrono::milliseconds(delay_ms));
    goaway_timer_.async_wait([self = shared_from_this()](beast::error_code e) {
      if (e) return;
      self->CloseAfterFlush(
          Reason(static_cast<uint16_t>(websocket::close_code::service_restart),
                 "the entitysync replica is draining; reconnect"));
    });
    return true;
  }
  TrackAnswer(response);
  message.AppendFrames(mode_, &out_);
  return true;
}

void WsSession::OnUpstreamWriteDone(size_t queued) {
  upstream_queued_ = queued;
  MaybeResumeRead();
}

void WsSession::OnUpstreamDone(const grpc::Status& status) {
  upstream_done_ = true;
  // The stream's events hold this session; dropping the stream ends that
  // cycle.
  upstream_.reset();
  if (finished_ || closing_) return;
  if (!accepted_) {
    Finish();
    return;
  }
  if (goaway_ || status.ok()) {
    CloseAfterFlush(
        Reason(static_cast<uint16_t>(websocket::close_code::service_restart),
               "the entitysync replica is draining; reconnect"));
  } else if (status.error_code() == grpc::StatusCode::UNAVAILABLE) {
    CloseAfterFlush(Reason(
        static_cast<uint16_t>(websocket::close_code::try_again_later),
        absl::StrCat("entitysync is unavailable: ", status.error_message())));
  } else {
    CloseAfterFlush(Reason(
        static_cast<uint16_t>(4000 + static_cast<int>(status.error_code())),
        status.error_message()));
  }
}

void WsSession::Send(WsFrame frame) {
  Send(std::make_shared<const WsFrame>(std::move(frame)));
}

void WsSession::Send(std::shared_ptr<const WsFrame> frame) {
  if (closing_ || finished_) return;
  out_.push_back(std::move(frame));
  if (!writing_) DoWrite();
}

void WsSession::DoWrite() {
  writing_ = true;
  // Out of the queue while written: a frame the queue may move (Send grows
  // it) must not be the one Beast reads.
  in_write_ = std::move(out_[out_head_]);
  if (++out_head_ == out_.size()) {
    // Idle connections hold no frame storage.
    std::vector<std::shared_ptr<const WsFrame>>().swap(out_);
    out_head_ = 0;
  } else if (out_head_ * 2 >= out_.size()) {
    // Frames keep coming while some wait: drop the written ones, so the
    // queue holds what waits (at most kMaxOutFrames and one message's).
    out_.erase(out_.begin(), out_.begin() + static_cast<ptrdiff_t>(out_head_));
    out_head_ = 0;
  }
  // Held while more frames wait: this one goes out with the last of them.
  ws_.next_layer().hold(out_head_ < out_.size());
  ws_.binary(in_write_->binary);
  ArmWriteTimer();
  ws_.async_write(
      net::buffer(in_write_->data),
      beast::bind_front_handler(&WsSession::OnWrite, shared_from_this()));
}

void WsSession::ArmWriteTimer() {
  write_started_ = std::chrono::steady_clock::now();
  // Armed once for many writes: a write that finishes leaves the timer
  // running (no cancel and re-arm per frame), and its expiry looks at the
  // write in flight then.
  if (write_timer_armed_) return;
  StartWriteTimer(write_started_ + ToChrono(state_->options.write_timeout));
}

void WsSession::StartWriteTimer(std::chrono::steady_clock::time_point at) {
  write_timer_armed_ = true;
  write_timer_.expires_at(at);
  write_timer_.async_wait([self = shared_from_this()](beast::error_code e) {
    self->write_timer_armed_ = false;
    if (e || self->finished_ || !self->writing_) return;
    const auto deadline =
        self->write_started_ + ToChrono(self->state_->options.write_timeout);
    if (std::chrono::steady_clock::now() < deadline) {
      // A later write is in flight: it has the rest of its own timeout.
      self->StartWriteTimer(deadline);
      return;
    }
    // A browser that takes no frame for the whole timeout is cut off.
    self->CloseSocket();
  });
}

void WsSession::OnWrite(beast::error_code error, size_t /*bytes*/) {
  writing_ = false;
  if (error) {
    Finish();
    return;
  }
  in_write_.reset();
  if (out_head_ < out_.size()) {
    DoWrite();
  } else if (close_reason_.has_value()) {
    DoClose();
  } else if (upstream_waiting_ && upstream_ != nullptr) {
    upstream_waiting_ = false;
    upstream_->ReadNext();
  }
  MaybeResumeRead();
}

void WsSession::CloseAfterFlush(websocket::close_reason reason) {
  if (closing_ || finished_) return;
  closing_ = true;
  close_reason_ = std::move(reason);
  if (upstream_ != nullptr && !upstream_done_) upstream_->Cancel();
  if (!writing_) DoClose();
}

void WsSession::DoClose() {
  writing_ = true;
  // Whatever is held goes out before the close frame, with it.
  ws_.next_layer().hold(false);
  ArmWriteTimer();
  ws_.async_close(*close_reason_,
                  [self = shared_from_this()](beast::error_code /*error*/) {
                    self->writing_ = false;
                    self->Finish();
                  });
  MaybeResumeRead();
}

void WsSession::Finish() {
  if (finished_) return;
  finished_ = true;
  closing_ = true;
  write_timer_.cancel();
  goaway_timer_.cancel();
  if (upstream_ != nullptr && !upstream_done_) upstream_->Cancel();
  beast::error_code ignored;
  ws_.next_layer().next_layer().socket().shutdown(tcp::socket::shutdown_both,
                                                  ignored);
  CloseSocket();
  state_->connections.Remove(this);
}

void WsSession::Abort() {
  if (upstream_ != nullptr && !upstream_done_) upstream_->Cancel();
  upstream_.reset();
  CloseSocket();
}

bool WsSession::OnStrand() {
  using Strand = net::strand<net::io_context::executor_type>;
  const net::any_io_executor executor = ws_.get_executor();
  const Strand* strand = executor.target<Strand>();
  return strand != nullptr && strand->running_in_this_thread();
}

void WsSession::CloseSocket() { ws_.next_layer().next_layer().close(); }

}  // namespace gateway
}  // namespace entitysync
