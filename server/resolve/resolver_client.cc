#include "server/resolve/resolver_client.h"

#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "common/grpc_status.h"
#include "common/tls.h"
#include "grpcpp/create_channel.h"
#include "grpcpp/security/credentials.h"
#include "grpcpp/support/channel_arguments.h"
#include "server/transport/grpc/unary_client_call.h"

namespace entitysync {
GrpcResolverClient::GrpcResolverClient(std::shared_ptr<grpc::Channel> channel,
                                       IoThreads* io_threads)
    : stub_(v1::Resolver::NewStub(std::move(channel))),
      io_threads_(io_threads) {}

void GrpcResolverClient::Resolve(const v1::ResolveRequest& request,
                                 absl::Duration timeout, Callback done) {
  StartUnaryCall<v1::ResolveResponse>(
      io_threads_->Pick(), absl::Now() + timeout,
      [&](grpc::ClientContext* context, grpc::CompletionQueue* cq) {
        return stub_->PrepareAsyncResolve(context, request, cq);
      },
      std::move(done));
}

PassthroughClient::PassthroughClient(std::shared_ptr<grpc::Channel> channel,
                                     absl::Duration timeout,
                                     IoThreads* io_threads)
    : stub_(v1::PassthroughBackend::NewStub(std::move(channel))),
      timeout_(timeout),
      io_threads_(io_threads) {}

void PassthroughClient::Handle(const v1::PassthroughRequest& request,
                               Callback done) {
  {
    absl::MutexLock lock(&mu_);
    ++in_flight_;
  }
  StartUnaryCall<v1::PassthroughResponse>(
      io_threads_->Pick(), absl::Now() + timeout_,
      [&](grpc::ClientContext* context, grpc::CompletionQueue* cq) {
        return stub_->PrepareAsyncHandle(context, request, cq);
      },
      [this, done = std::move(done)](
          absl::StatusOr<v1::PassthroughResponse> response) mutable {
        done(std::move(response));
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
