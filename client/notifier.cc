#include "client/notifier.h"

#include <utility>

#include "common/grpc_status.h"
#include "grpcpp/client_context.h"
#include "grpcpp/create_channel.h"

namespace entitysync {
namespace client {

Notifier::Notifier(const NotifierOptions& options)
    : Notifier(grpc::CreateChannel(options.target,
                                   options.channel_credentials != nullptr
                                       ? options.channel_credentials
                                       : grpc::InsecureChannelCredentials()),
               options) {}

Notifier::Notifier(std::shared_ptr<grpc::Channel> channel,
                   const NotifierOptions& options)
    : token_(options.token),
      deadline_(options.deadline),
      stub_(v1::Notifier::NewStub(std::move(channel))) {}

absl::StatusOr<uint32_t> Notifier::Notify(
    const std::vector<v1::Change>& changes, bool local_only) const {
  v1::NotifyRequest request;
  request.mutable_changes()->Reserve(static_cast<int>(changes.size()));
  for (const v1::Change& change : changes) *request.add_changes() = change;
  request.set_local_only(local_only);

  grpc::ClientContext context;
  context.set_deadline(absl::ToChronoTime(absl::Now() + deadline_));
  if (!token_.empty()) context.AddMetadata("authorization", token_);
  v1::NotifyResponse response;
  const grpc::Status status = stub_->Notify(&context, request, &response);
  if (!status.ok()) return FromGrpcStatus(status);
  return response.accepted();
}

}  // namespace client
}  // namespace entitysync
