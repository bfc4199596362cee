#include "common/grpc_status.h"

#include <string>

namespace entitysync {

grpc::Status ToGrpcStatus(const absl::Status& status) {
  if (status.ok()) return grpc::Status::OK;
  return grpc::Status(static_cast<grpc::StatusCode>(status.code()),
                      std::string(status.message()));
}

absl::Status FromGrpcStatus(const grpc::Status& status) {
  return StatusFromRpcCode(static_cast<int32_t>(status.error_code()),
                           status.error_message());
}

absl::Status StatusFromRpcCode(int32_t code, absl::string_view message) {
  if (code == 0) {
    return message.empty() ? absl::OkStatus() : absl::UnknownError(message);
  }
  constexpr int32_t kLastCode =
      static_cast<int32_t>(absl::StatusCode::kUnauthenticated);
  if (code < 0 || code > kLastCode) return absl::UnknownError(message);
  return absl::Status(static_cast<absl::StatusCode>(code), message);
}

}  // namespace entitysync
