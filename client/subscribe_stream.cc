#include "client/subscribe_stream.h"

#include <utility>

namespace entitysync {
namespace client {

std::shared_ptr<SubscribeStream> SubscribeStream::Start(
    std::shared_ptr<grpc::Channel> channel, const std::string& credentials,
    Sink sink) {
  std::shared_ptr<SubscribeStream> stream(
      new SubscribeStream(std::move(channel), std::move(sink)));
  if (!credentials.empty()) {
    stream->context_.AddMetadata("authorization", credentials);
  }
  stream->self_ = stream;
  stream->stub_->async()->Subscribe(&stream->context_, stream.get());
  // The hold lets Write start operations from outside reactions; it is
  // released by Close once reads have ended.
  stream->AddHold();
  stream->StartRead(&stream->response_);
  stream->StartCall();
  return stream;
}

SubscribeStream::SubscribeStream(std::shared_ptr<grpc::Channel> channel,
                                 Sink sink)
    : channel_(std::move(channel)),
      stub_(v1::EntitySync::NewStub(channel_)),
      sink_(std::move(sink)) {}

void SubscribeStream::Write(v1::SubscribeRequest request) {
  {
    absl::MutexLock lock(&mu_);
    if (closing_) return;
    queued_.push_back(std::move(request));
    if (write_in_flight_) return;
    write_in_flight_ = true;
    in_flight_ = std::move(queued_.front());
    queued_.pop_front();
  }
  // in_flight_ is not touched by others while write_in_flight_ is set, so it
  // is safe to hand to gRPC outside the lock.
  StartWrite(&in_flight_);
}

void SubscribeStream::OnWriteDone(bool ok) {
  bool write_next = false;
  bool release_hold = false;
  {
    absl::MutexLock lock(&mu_);
    if (ok && !closing_ && !queued_.empty()) {
      in_flight_ = std::move(queued_.front());
      queued_.pop_front();
      write_next = true;
    } else {
      write_in_flight_ = false;
      release_hold = closing_ && !hold_released_;
      hold_released_ = hold_released_ || release_hold;
    }
  }
  if (write_next) {
    StartWrite(&in_flight_);
  } else if (release_hold) {
    RemoveHold();
  }
}

void SubscribeStream::OnReadInitialMetadataDone(bool ok) {
  if (ok) sink_(StreamEvent{StreamEvent::Kind::kUp, {}, {}});
}

void SubscribeStream::OnReadDone(bool ok) {
  if (!ok) {
    Close();
    return;
  }
  sink_(StreamEvent{StreamEvent::Kind::kMessage, std::move(response_), {}});
  response_.Clear();
  StartRead(&response_);
}

void SubscribeStream::Close() {
  bool release_hold = false;
  {
    absl::MutexLock lock(&mu_);
    closing_ = true;
    queued_.clear();
    release_hold = !write_in_flight_ && !hold_released_;
    hold_released_ = hold_released_ || release_hold;
  }
  if (release_hold) RemoveHold();
}

void SubscribeStream::OnDone(const grpc::Status& status) {
  // `self` may be the last reference: this object dies when OnDone returns.
  std::shared_ptr<SubscribeStream> self = std::move(self_);
  sink_(StreamEvent{StreamEvent::Kind::kDone, {}, status});
}

}  // namespace client
}  // namespace entitysync
