// The one place that converts between absl::Status and grpc::Status (and
// google.rpc.Code values carried in messages). Abseil's codes equal gRPC's,
// so only the representation changes. Pure functions; thread-safe.
#ifndef ENTITYSYNC_COMMON_GRPC_STATUS_H_
#define ENTITYSYNC_COMMON_GRPC_STATUS_H_

#include <cstdint>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "grpcpp/support/status.h"

namespace entitysync {

grpc::Status ToGrpcStatus(const absl::Status& status);
absl::Status FromGrpcStatus(const grpc::Status& status);

// A google.rpc.Code value received in a message (e.g. Error.code). Values
// outside the known range become UNKNOWN rather than an invalid StatusCode;
// code 0 (OK) with a message is also reported as UNKNOWN, since an error
// message claiming success is itself a peer bug.
absl::Status StatusFromRpcCode(int32_t code, absl::string_view message);

}  // namespace entitysync

#endif  // ENTITYSYNC_COMMON_GRPC_STATUS_H_
