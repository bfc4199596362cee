// A stream's or call's credentials: read from the `authorization` metadata
// and checked against Limits::max_credentials_bytes, the one limit that
// holds on every path that takes credentials (Subscribe metadata,
// `authenticate`, Await). Stateless functions; thread-safe.
#ifndef ENTITYSYNC_SERVER_CREDENTIALS_H_
#define ENTITYSYNC_SERVER_CREDENTIALS_H_

#include <cstddef>
#include <string>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "grpcpp/server_context.h"
#include "server/limits.h"

namespace entitysync {

// The `authorization` metadata of the call, or "" without one.
std::string ReadAuthorization(const grpc::ServerContextBase& context);

// INVALID_ARGUMENT "<what> is N bytes; the limit is L" when `credentials` is
// over the limit. The message never contains the credentials.
absl::Status CheckCredentialsSize(absl::string_view what,
                                  absl::string_view credentials,
                                  const Limits& limits);

}  // namespace entitysync

#endif  // ENTITYSYNC_SERVER_CREDENTIALS_H_
