#include "client/subscribe_stream.h"

#include <utility>

#include "common/metadata.h"

namespace entitysync {
namespace client {

std::shared_ptr<SubscribeStream> SubscribeStream::Start(
    const std::shared_ptr<grpc::Channel>& channel,
    const std::string& credentials, Sink sink) {
  std::shared_ptr<SubscribeStream> stream(new SubscribeStream(std::move(sink)));
  grpc::ClientContext* context;
  {
    absl::MutexLock lock(&stream->mu_);
    context = stream->context_.get();
  }
  if (!credentials.empty()) context->AddMetadata("authorization", credentials);
  // Several waiting messages then come in one (SubscribeResponse.batch),
  // which costs both ends less than one read each.
  context->AddMetadata(kBatchMetadata, "1");
  stream->self_ = stream;
  // The stub is needed only to create the call.
  v1::EntitySync::NewStub(channel)->async()->Subscribe(context, stream.get());
  // The hold lets Write start operations from outside reactions; it is
  // released by Close once reads have ended.
  stream->AddHold();
  stream->StartRead(&stream->response_);
  stream->StartCall();
  return stream;
}

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
  if (ok) sink_(StreamEvent{StreamEvent::Kind::kUp, {}, {}, nullptr});
}

void SubscribeStream::OnReadDone(bool ok) {
  if (!ok) {
    Close();
    return;
  }
  sink_(StreamEvent{
      StreamEvent::Kind::kMessage, std::move(response_), {}, nullptr});
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

void SubscribeStream::Cancel() {
  std::shared_ptr<grpc::ClientContext> context;
  {
    absl::MutexLock lock(&mu_);
    context = context_;
  }
  if (context != nullptr) context->TryCancel();
}

void SubscribeStream::OnDone(const grpc::Status& status) {
  // `self` may be the last reference: this object dies when OnDone returns,
  // which is safe because it no longer holds the context (see the header).
  std::shared_ptr<SubscribeStream> self = std::move(self_);
  std::shared_ptr<grpc::ClientContext> context;
  {
    absl::MutexLock lock(&mu_);
    context = std::move(context_);
  }
  sink_(StreamEvent{StreamEvent::Kind::kDone, {}, status, std::move(context)});
}

}  // namespace client
}  // namespace entitysync
