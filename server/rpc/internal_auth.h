// InternalAuth: the token the internal port's Notify and Admin calls must
// carry when one is configured (--internal_token_file). A caller sends it as
// the `authorization` metadata, bare or as "Bearer <token>". Health and
// reflection stay open (probes and tooling carry no secrets). The token is
// compared in constant time and never logged or echoed. Immutable after
// construction; thread-safe.
#ifndef ENTITYSYNC_SERVER_RPC_INTERNAL_AUTH_H_
#define ENTITYSYNC_SERVER_RPC_INTERNAL_AUTH_H_

#include <string>
#include <utility>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "grpcpp/server_context.h"
#include "grpcpp/support/status.h"

namespace entitysync {

class InternalAuth {
 public:
  // No token: every call is let through (the internal port is then guarded
  // by the network alone).
  InternalAuth() = default;
  explicit InternalAuth(std::string token) : token_(std::move(token)) {}

  // Reads the token from a file (a Kubernetes Secret mount): surrounding
  // whitespace is dropped. An empty path means no token. Errors name the
  // path, never the contents.
  static absl::StatusOr<InternalAuth> FromFile(const std::string& path);

  bool enabled() const { return !token_.empty(); }

  // OK, or UNAUTHENTICATED saying what is missing (not what was expected).
  grpc::Status Check(const grpc::ServerContextBase& context) const;
  grpc::Status Check(absl::string_view authorization, bool present) const;

 private:
  std::string token_;
};

}  // namespace entitysync

#endif  // ENTITYSYNC_SERVER_RPC_INTERNAL_AUTH_H_
