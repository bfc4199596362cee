#include "server/resolver_client.h"

#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "common/grpc_status.h"
#include "common/tls.h"
#include "grpcpp/create_channel.h"
#include "grpcpp/security/credentials.h"
#include "grpcpp/support/channel_arguments.h"

namespace entitysync {
namespace {

// Owns the state of one unary call until its callback has run.
template <typename Request, typename Response, typename Done>
struct UnaryCall {
  grpc::ClientContext context;
  Request request;
  Response response;
  Done done;
};

// Runs the call's callback after freeing the call. The ClientContext holds a
// channel reference, and `done` may let the owner destroy the channel: on
// gRPC 1.51, dropping the last channel reference on a callback thread
// crashes, so the context must be gone before `done` runs.
template <typename Call>
void Finish(Call* call, const grpc::Status& status) {
  auto done = std::move(call->done);
  auto response = std::move(call->response);
  delete call;
  if (status.ok()) {
    done(std::move(response));
  } else {
    done(FromGrpcStatus(status));
  }
}

}  // namespace

GrpcResolverClient::GrpcResolverClient(std::shared_ptr<grpc::Channel> channel)
    : stub_(v1::Resolver::NewStub(std::move(channel))) {}

void GrpcResolverClient::Resolve(const v1::ResolveRequest& request,
                                 absl::Duration timeout, Callback done) {
  using Call = UnaryCall<v1::ResolveRequest, v1::ResolveResponse, Callback>;
  auto* call = new Call;
  call->request = request;
  call->done = std::move(done);
  call->context.set_deadline(absl::ToChronoTime(absl::Now() + timeout));
  stub_->async()->Resolve(
      &call->context, &call->request, &call->response,
      [call](grpc::Status status) { Finish(call, status); });
}

PassthroughClient::PassthroughClient(std::shared_ptr<grpc::Channel> channel,
                                     absl::Duration timeout)
    : stub_(v1::PassthroughBackend::NewStub(std::move(channel))),
      timeout_(timeout) {}

void PassthroughClient::Handle(const v1::PassthroughRequest& request,
                               Callback done) {
  using Call =
      UnaryCall<v1::PassthroughRequest, v1::PassthroughResponse, Callback>;
  {
    absl::MutexLock lock(&mu_);
    ++in_flight_;
  }
  auto* call = new Call;
  call->request = request;
  call->done = std::move(done);
  call->context.set_deadline(absl::ToChronoTime(absl::Now() + timeout_));
  stub_->async()->Handle(&call->context, &call->request, &call->response,
                         [this, call](grpc::Status status) {
                           Finish(call, status);
                           absl::MutexLock lock(&mu_);
                           --in_flight_;
                         });
}

void PassthroughClient::Drain(absl::Duration timeout) {
  absl::MutexLock lock(&mu_);
  mu_.AwaitWithTimeout(absl::Condition(
                           +[](int* n) { return *n == 0; }, &in_flight_),
                       timeout);
}

absl::StatusOr<std::shared_ptr<grpc::Channel>> ChannelPool::Get(
    const v1::BackendTarget& backend) {
  const std::string id = backend.has_tls()
                             ? absl::StrCat(backend.target(), "\ntls\n",
                                            backend.tls().SerializeAsString())
                             : backend.target();
  auto& channel = channels_[id];
  if (channel) return channel;
  if (!backend.has_tls()) {
    channel = grpc::CreateChannel(backend.target(),
                                  grpc::InsecureChannelCredentials());
    return channel;
  }
  TlsFiles files;
  files.ca_file = backend.tls().ca_file();
  files.cert_file = backend.tls().cert_file();
  files.key_file = backend.tls().key_file();
  absl::StatusOr<std::shared_ptr<grpc::ChannelCredentials>> credentials =
      MakeTlsChannelCredentials(files,
                                absl::StrCat("tls of ", backend.target()));
  if (!credentials.ok()) {
    channels_.erase(id);
    return credentials.status();
  }
  grpc::ChannelArguments args;
  if (!backend.tls().server_name().empty()) {
    args.SetSslTargetNameOverride(backend.tls().server_name());
  }
  channel = grpc::CreateCustomChannel(backend.target(), *credentials, args);
  return channel;
}

}  // namespace entitysync
