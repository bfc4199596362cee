// ResolverClient: how the server calls a resolver backend. The seam between
// the scheduler and gRPC: GrpcResolverClient is the real one; scheduler tests
// use an in-memory fake.
//
// Resolve is asynchronous and never blocks; `done` runs exactly once, on an
// I/O thread (the caller's own when it is one; see
// server/transport/grpc/io_threads.h; at once on the caller's thread with
// UNAVAILABLE once the server is shutting down), and must not block either.
// Thread-safe.
#ifndef ENTITYSYNC_SERVER_RESOLVE_RESOLVER_CLIENT_H_
#define ENTITYSYNC_SERVER_RESOLVE_RESOLVER_CLIENT_H_

#include <functional>
#include <map>
#include <memory>
#include <string>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "entitysync/v1/config.pb.h"
#include "entitysync/v1/resolver.grpc.pb.h"
#include "grpcpp/channel.h"
#include "server/transport/grpc/io_threads.h"

namespace entitysync {

class ResolverClient {
 public:
  using Callback = std::function<void(absl::StatusOr<v1::ResolveResponse>)>;
  virtual ~ResolverClient() = default;
  virtual void Resolve(const v1::ResolveRequest& request,
                       absl::Duration timeout, Callback done) = 0;
};

class GrpcResolverClient : public ResolverClient {
 public:
  // Calls run on `io_threads` (not owned; outlives the client's calls).
  GrpcResolverClient(std::shared_ptr<grpc::Channel> channel,
                     IoThreads* io_threads);
  void Resolve(const v1::ResolveRequest& request, absl::Duration timeout,
               Callback done) override;

 private:
  std::unique_ptr<v1::Resolver::Stub> stub_;
  IoThreads* const io_threads_;
};

// Forwards `passthrough` client messages. Same threading contract.
class PassthroughClient {
 public:
  using Callback = std::function<void(absl::StatusOr<v1::PassthroughResponse>)>;
  PassthroughClient(std::shared_ptr<grpc::Channel> channel,
                    absl::Duration timeout, IoThreads* io_threads);
  void Handle(const v1::PassthroughRequest& request, Callback done);
  // Waits (up to `timeout`) until no call is in flight, so that no callback
  // runs after the server is gone.
  void Drain(absl::Duration timeout);

 private:
  std::unique_ptr<v1::PassthroughBackend::Stub> stub_;
  const absl::Duration timeout_;
  IoThreads* const io_threads_;
  absl::Mutex mu_;
  int in_flight_ ABSL_GUARDED_BY(mu_) = 0;
};

// One channel per backend (target and TLS settings): plaintext, or TLS when
// the target has `tls`. Not thread-safe; used at start-up.
class ChannelPool {
 public:
  // Errors: a TLS file that cannot be read (named in the message).
  absl::StatusOr<std::shared_ptr<grpc::Channel>> Get(
      const v1::BackendTarget& backend);

 private:
  std::map<std::string, std::shared_ptr<grpc::Channel>> channels_;
};

}  // namespace entitysync

#endif  // ENTITYSYNC_SERVER_RESOLVE_RESOLVER_CLIENT_H_
