// The one place where the client maps gRPC statuses and google.rpc.Code
// values to absl::Status. Abseil's codes equal gRPC's, so only the
// representation changes.
#ifndef ENTITYSYNC_CLIENT_GRPC_STATUS_H_
#define ENTITYSYNC_CLIENT_GRPC_STATUS_H_

#include <cstdint>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "grpcpp/support/status.h"

namespace entitysync {
namespace client {

absl::Status ToAbslStatus(const grpc::Status& status);

// A google.rpc.Code value received in a message (e.g. Error.code). Values
// outside the known range become UNKNOWN rather than an invalid StatusCode;
// code 0 (OK) with a message is also reported as UNKNOWN, since an error
// message claiming success is itself a server bug.
absl::Status StatusFromRpcCode(int32_t code, absl::string_view message);

}  // namespace client
}  // namespace entitysync

#endif  // ENTITYSYNC_CLIENT_GRPC_STATUS_H_
