// Notifier announces changed entities to entitysync: a thin client of
// Notifier.Notify, which is served only on the internal port (default 7071).
//
//   NotifierOptions options;
//   options.target = "entitysync-internal:7071";
//   Notifier notifier(options);
//   v1::Change change;
//   *change.mutable_key() = ToProto(EntityKey{"items", "100"});
//   absl::StatusOr<uint32_t> accepted = notifier.Notify({change});
//
// Errors: the server's status is returned unchanged as an absl::Status:
// INVALID_ARGUMENT names the bad entry of a rejected batch (nothing of it was
// published), UNAVAILABLE means the server or its bus is down (nothing was
// published; retrying is safe because updates are full state),
// DEADLINE_EXCEEDED after options.deadline.
//
// Thread-safe: one Notifier may be shared by any number of threads. Each
// Notify is one blocking RPC.
#ifndef ENTITYSYNC_CLIENT_NOTIFIER_H_
#define ENTITYSYNC_CLIENT_NOTIFIER_H_

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "entitysync/v1/entitysync.grpc.pb.h"
#include "grpcpp/channel.h"
#include "grpcpp/security/credentials.h"

namespace entitysync {
namespace client {

struct NotifierOptions {
  // host:port of the internal port.
  std::string target = "127.0.0.1:7071";
  // Sent as the `authorization` metadata when not empty (servers may
  // require a token for Notify).
  std::string token;
  // Per call.
  absl::Duration deadline = absl::Seconds(5);
  // TLS or other channel credentials; nullptr means insecure (plaintext).
  std::shared_ptr<grpc::ChannelCredentials> channel_credentials;
};

class Notifier {
 public:
  // Connects lazily: a server that is down shows up as UNAVAILABLE from
  // Notify, not here.
  explicit Notifier(const NotifierOptions& options);

  // Uses an existing channel (options.target and channel_credentials are
  // ignored), e.g. one shared with other clients of the same server.
  Notifier(std::shared_ptr<grpc::Channel> channel,
           const NotifierOptions& options);

  Notifier(const Notifier&) = delete;
  Notifier& operator=(const Notifier&) = delete;

  // Sends `changes` as one batch; returns how many the server accepted (all
  // of them when it succeeds). `local_only` keeps the notice on the replica
  // that receives it.
  absl::StatusOr<uint32_t> Notify(const std::vector<v1::Change>& changes,
                                  bool local_only = false) const;

 private:
  // Const after construction.
  const std::string token_;
  const absl::Duration deadline_;
  const std::unique_ptr<v1::Notifier::Stub> stub_;
};

}  // namespace client
}  // namespace entitysync

#endif  // ENTITYSYNC_CLIENT_NOTIFIER_H_
