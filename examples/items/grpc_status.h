// Conversions between absl::Status (used inside the examples) and
// grpc::Status (used on the wire). The codes match one to one; this is the
// only place the examples convert.
//
// Pure functions; thread-safe.
#ifndef ENTITYSYNC_EXAMPLES_ITEMS_GRPC_STATUS_H_
#define ENTITYSYNC_EXAMPLES_ITEMS_GRPC_STATUS_H_

#include <grpcpp/support/status.h>

#include "absl/status/status.h"

namespace entitysync::examples {

grpc::Status ToGrpcStatus(const absl::Status& status);
absl::Status FromGrpcStatus(const grpc::Status& status);

}  // namespace entitysync::examples

#endif  // ENTITYSYNC_EXAMPLES_ITEMS_GRPC_STATUS_H_
