// A stream's or call's credentials: read from the `authorization` metadata
// and checked against the one size limit (the replica's
// --max_credentials_bytes, 4096 by default) that holds on every path that
// takes credentials: Subscribe metadata, `authenticate`, Await, and the
// gateway's WebSocket, grpc-web and long-poll requests. Stateless
// functions; thread-safe.
#ifndef ENTITYSYNC_COMMON_CREDENTIALS_H_
#define ENTITYSYNC_COMMON_CREDENTIALS_H_

#include <cstddef>
#include <string>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "grpcpp/server_context.h"

namespace entitysync {

// The `authorization` metadata of the call, or "" without one.
std::string ReadAuthorization(const grpc::ServerContextBase& context);

// INVALID_ARGUMENT "<what> is N bytes; the limit is L" when `credentials` is
// over the limit. The message never contains the credentials.
absl::Status CheckCredentialsSize(absl::string_view what,
                                  absl::string_view credentials, size_t limit);

}  // namespace entitysync

#endif  // ENTITYSYNC_COMMON_CREDENTIALS_H_
