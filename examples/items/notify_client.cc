#include "examples/items/notify_client.h"

#include <grpcpp/grpcpp.h>

#include <chrono>
#include <cstdlib>
#include <memory>

#include "common/grpc_status.h"
#include "entitysync/v1/entitysync.grpc.pb.h"

namespace entitysync::examples {

absl::Status NotifyChange(const std::string& target,
                          const entitysync::v1::EntityKey& key,
                          uint64_t version, absl::Duration timeout) {
  std::shared_ptr<grpc::Channel> channel =
      grpc::CreateChannel(target, grpc::InsecureChannelCredentials());
  std::unique_ptr<entitysync::v1::Notifier::Stub> stub =
      entitysync::v1::Notifier::NewStub(channel);

  entitysync::v1::NotifyRequest request;
  entitysync::v1::Change* change = request.add_changes();
  *change->mutable_key() = key;
  change->set_version(version);

  grpc::ClientContext context;
  // From the environment, so that the token shows in no process list.
  if (const char* token = std::getenv("ENTITYSYNC_INTERNAL_TOKEN");
      token != nullptr && *token != '\0') {
    context.AddMetadata("authorization", token);
  }
  context.set_deadline(std::chrono::system_clock::now() +
                       absl::ToChronoNanoseconds(timeout));
  entitysync::v1::NotifyResponse response;
  return FromGrpcStatus(stub->Notify(&context, request, &response));
}

}  // namespace entitysync::examples
