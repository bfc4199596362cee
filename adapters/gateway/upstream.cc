#include "adapters/gateway/upstream.h"

#include <utility>

#include "grpcpp/create_channel.h"
#include "grpcpp/security/credentials.h"
#include "grpcpp/support/channel_arguments.h"

namespace entitysync {
namespace gateway {

bool IsValidMetadataValue(absl::string_view value) {
  for (unsigned char c : value) {
    if (c < 0x20 || c > 0x7e) return false;
  }
  return true;
}

UpstreamPool::UpstreamPool(ChannelFactory factory, int streams_per_channel)
    : factory_(std::move(factory)),
      streams_per_channel_(streams_per_channel > 0 ? streams_per_channel : 1) {}

UpstreamPool::ChannelFactory UpstreamPool::TcpChannels(
    const std::string& target, int max_message_bytes,
    std::shared_ptr<grpc::ChannelCredentials> credentials,
    const std::string& server_name) {
  if (credentials == nullptr) credentials = grpc::InsecureChannelCredentials();
  return [target, max_message_bytes, credentials, server_name] {
    grpc::ChannelArguments args;
    if (!server_name.empty()) args.SetSslTargetNameOverride(server_name);
    args.SetMaxReceiveMessageSize(max_message_bytes);
    // Without a local pool, channels with equal arguments share one
    // connection, and with it the per-connection stream cap.
    args.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);
    // A target that names several replicas (ipv4:a:7070,b:7070, or a DNS
    // name with several addresses) spreads streams over all of them.
    args.SetLoadBalancingPolicyName("round_robin");
    args.SetInt(GRPC_ARG_KEEPALIVE_TIME_MS, 30000);
    args.SetInt(GRPC_ARG_KEEPALIVE_TIMEOUT_MS, 10000);
    // The gateway mostly receives: keep pinging past gRPC's default of two
    // pings with nothing sent, or a dead replica connection goes unnoticed.
    args.SetInt(GRPC_ARG_HTTP2_MAX_PINGS_WITHOUT_DATA, 0);
    return grpc::CreateCustomChannel(target, credentials, args);
  };
}

std::shared_ptr<grpc::Channel> UpstreamPool::Acquire(size_t* slot) {
  absl::MutexLock lock(&mu_);
  ++streams_;
  for (size_t i = 0; i < channels_.size(); ++i) {
    if (counts_[i] < streams_per_channel_) {
      ++counts_[i];
      *slot = i;
      return channels_[i];
    }
  }
  channels_.push_back(factory_());
  counts_.push_back(1);
  *slot = channels_.size() - 1;
  return channels_.back();
}

void UpstreamPool::Release(size_t slot) {
  absl::MutexLock lock(&mu_);
  --counts_[slot];
  --streams_;
}

size_t UpstreamPool::streams() const {
  absl::MutexLock lock(&mu_);
  return streams_;
}

bool UpstreamPool::WaitUntilIdle(absl::Duration timeout) const {
  absl::MutexLock lock(&mu_);
  auto idle = [this]()
                  ABSL_SHARED_LOCKS_REQUIRED(mu_) { return streams_ == 0; };
  return mu_.AwaitWithTimeout(absl::Condition(&idle), timeout);
}

UpstreamStream::UpstreamStream(UpstreamPool* pool, Events events)
    : pool_(pool), events_(std::move(events)) {}

UpstreamStream::~UpstreamStream() = default;

std::shared_ptr<UpstreamStream> UpstreamStream::Start(
    UpstreamPool* pool, const std::string& authorization, Events events) {
  std::shared_ptr<UpstreamStream> stream(
      new UpstreamStream(pool, std::move(events)));
  std::shared_ptr<grpc::Channel> channel = pool->Acquire(&stream->slot_);
  if (!authorization.empty()) {
    stream->context_.AddMetadata("authorization", authorization);
  }
  stream->self_ = stream;
  v1::EntitySync::NewStub(channel)->async()->Subscribe(&stream->context_,
                                                       stream.get());
  // The hold lets ReadNext and Write start operations from outside
  // reactions; it is released once the stream is ending and idle.
  stream->AddHold();
  {
    absl::MutexLock lock(&stream->mu_);
    stream->read_in_flight_ = true;
  }
  stream->StartRead(&stream->response_);
  stream->StartCall();
  return stream;
}

SubscribeLinkFactory UpstreamStream::Factory(UpstreamPool* pool) {
  return [pool](const std::string& authorization, net::any_io_executor,
                Events events) -> std::shared_ptr<SubscribeLink> {
    return Start(pool, authorization, std::move(events));
  };
}

size_t UpstreamStream::Write(v1::SubscribeRequest request) {
  size_t queued;
  {
    absl::MutexLock lock(&mu_);
    if (ending_) return 0;
    queued_.push_back(std::move(request));
    queued = queued_.size() + (write_in_flight_ ? 1 : 0);
    if (write_in_flight_) return queued;
    write_in_flight_ = true;
    in_flight_ = std::move(queued_.front());
    queued_.pop_front();
  }
  StartWrite(&in_flight_);
  return queued;
}

void UpstreamStream::OnWriteDone(bool ok) {
  bool write_next = false;
  bool release = false;
  size_t queued = 0;
  {
    absl::MutexLock lock(&mu_);
    if (!ok) ending_ = true;
    if (!ending_ && !queued_.empty()) {
      in_flight_ = std::move(queued_.front());
      queued_.pop_front();
      write_next = true;
      queued = queued_.size() + 1;
    } else {
      write_in_flight_ = false;
      if (ending_) queued_.clear();
      MaybeReleaseHoldLocked(&release);
    }
  }
  if (write_next) StartWrite(&in_flight_);
  if (release) RemoveHold();
  if (ok && events_.on_write_done) events_.on_write_done(queued);
}

void UpstreamStream::ReadNext() {
  {
    absl::MutexLock lock(&mu_);
    if (ending_ || read_in_flight_ || hold_released_) return;
    read_in_flight_ = true;
  }
  response_.Clear();
  StartRead(&response_);
}

void UpstreamStream::OnReadDone(bool ok) {
  bool release = false;
  bool deliver = false;
  {
    absl::MutexLock lock(&mu_);
    read_in_flight_ = false;
    if (!ok) ending_ = true;
    deliver = !ending_;
    MaybeReleaseHoldLocked(&release);
  }
  // gRPC runs OnDone only after this reaction returns, so the object is
  // still alive below even when the hold is gone.
  if (release) RemoveHold();
  if (deliver) {
    LinkMessages messages;
    messages.emplace_back(std::move(response_));
    events_.on_message(std::move(messages));
  }
}

void UpstreamStream::Cancel() {
  bool release = false;
  {
    absl::MutexLock lock(&mu_);
    ending_ = true;
    MaybeReleaseHoldLocked(&release);
  }
  context_.TryCancel();
  if (release) RemoveHold();
}

void UpstreamStream::MaybeReleaseHoldLocked(bool* release) {
  if (ending_ && !read_in_flight_ && !write_in_flight_ && !hold_released_) {
    hold_released_ = true;
    *release = true;
  }
}

void UpstreamStream::OnDone(const grpc::Status& status) {
  // The pool counts this stream until everything it holds is gone: the
  // gateway frees its threads' io_context and the pool once the count is 0,
  // and what the events hold (a session) must not outlive those.
  UpstreamPool* pool = pool_;
  const size_t slot = slot_;
  {
    std::shared_ptr<UpstreamStream> self = std::move(self_);
    Events events = std::move(events_);
    events.on_done(status);
  }  // may destroy this
  pool->Release(slot);
}

}  // namespace gateway
}  // namespace entitysync
