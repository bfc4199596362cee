#include "server/transport/grpc/subscribe_call.h"

#include <utility>

#include "common/credentials.h"
#include "common/grpc_status.h"
#include "common/metadata.h"
#include "grpcpp/impl/codegen/proto_utils.h"

namespace entitysync {
namespace {

// The client takes SubscribeResponse.batch (entitysync.proto, Batch).
bool AcceptsBatches(const grpc::ServerContext& context) {
  const auto& metadata = context.client_metadata();
  auto it = metadata.find(kBatchMetadata);
  return it != metadata.end() && it->second == "1";
}

}  // namespace

void SubscribeCall::Listen(const SubscribeListener* listener) {
  auto* call = new SubscribeCall(listener);
  // Before the request: gRPC reports the end of every call it starts.
  call->context_.AsyncNotifyWhenDone(&call->done_tag_);
  listener->service->RequestSubscribe(
      &call->context_, &call->stream_, listener->thread->cq(),
      listener->thread->cq(), &call->accepted_tag_);
}

SubscribeCall::SubscribeCall(const SubscribeListener* listener)
    : listener_(listener), live_(listener->thread) {}

void SubscribeCall::OnAccepted(bool ok) {
  if (!ok) {
    // The server is shutting down; the call never started (no done notice).
    delete this;
    return;
  }
  Listen(listener_);
  ++outstanding_;  // the done notice
  absl::StatusOr<std::shared_ptr<Session>> session =
      // The thread outlives every session: shared without being owned.
      Session::Open(listener_->deps,
                    std::shared_ptr<SessionExecutor>(
                        std::shared_ptr<SessionExecutor>(), listener_->thread),
                    this, std::string(ReadAuthorization(context_)));
  if (!session.ok()) {
    Finish(ToGrpcStatus(session.status()));
    return;
  }
  session_ = *std::move(session);
  client_takes_batches_ = AcceptsBatches(context_);
  // Clients know the stream is up without waiting for the first update.
  ++outstanding_;
  stream_.SendInitialMetadata(&metadata_tag_);
  StartRead();
}

void SubscribeCall::StartRead() {
  ++outstanding_;
  stream_.Read(&read_buffer_, &read_tag_);
}

void SubscribeCall::OnMetadataSent(bool) {
  --outstanding_;
  MaybeDelete();
}

void SubscribeCall::OnRead(bool ok) {
  --outstanding_;
  // !ok: half-closed or gone. Half-close keeps the stream (and its
  // subscriptions): a client may send its subscriptions and then only
  // listen. The end of the call arrives as the done notice.
  if (ok && !done_) {
    v1::SubscribeRequest request;
    if (grpc::SerializationTraits<v1::SubscribeRequest>::Deserialize(
            &read_buffer_, &request)
            .ok()) {
      session_->OnRequest(request);
    } else {
      session_->OnMalformedRequest();
    }
    if (!done_ && !session_->closing()) StartRead();
  }
  MaybeDelete();
}

void SubscribeCall::Write(OutboundBatch messages) {
  ++outstanding_;
  // The stream takes its own reference to the shared slices.
  if (messages.size() == 1) {
    stream_.Write(messages.front().bytes, &write_tag_);
  } else if (client_takes_batches_) {
    stream_.Write(EncodeBatch(messages), &write_tag_);
  } else {
    unflushed_ = std::move(messages);
    next_unflushed_ = 0;
    WriteNextUnflushed();
  }
}

void SubscribeCall::WriteNextUnflushed() {
  grpc::WriteOptions options;
  // All but the last wait in gRPC's buffer; the last flushes them all.
  if (next_unflushed_ + 1 < unflushed_.size()) options.set_buffer_hint();
  stream_.Write(unflushed_[next_unflushed_++].bytes, options, &write_tag_);
}

void SubscribeCall::OnWritten(bool ok) {
  if (ok && !done_ && next_unflushed_ < unflushed_.size()) {
    WriteNextUnflushed();  // the same write goes on: outstanding_ stays
    return;
  }
  unflushed_.clear();
  next_unflushed_ = 0;
  --outstanding_;
  if (!done_) session_->OnWriteDone(ok);
  MaybeDelete();
}

void SubscribeCall::Finish(const grpc::Status& status) {
  ++outstanding_;
  stream_.Finish(status, &finish_tag_);
}

void SubscribeCall::CancelWrite() { context_.TryCancel(); }

void SubscribeCall::OnFinished(bool) {
  --outstanding_;
  MaybeDelete();
}

void SubscribeCall::OnCallDone(bool) {
  --outstanding_;
  if (session_ != nullptr && !done_) {
    if (context_.IsCancelled()) session_->OnCancel();
    done_ = true;
    session_->OnDone();
  }
  done_ = true;
  MaybeDelete();
}

void SubscribeCall::MaybeDelete() {
  if (done_ && outstanding_ == 0) delete this;
}

}  // namespace entitysync
