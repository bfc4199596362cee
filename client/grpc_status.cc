#include "client/grpc_status.h"

namespace entitysync {
namespace client {

absl::Status ToAbslStatus(const grpc::Status& status) {
  return StatusFromRpcCode(static_cast<int32_t>(status.error_code()),
                           status.error_message());
}

absl::Status StatusFromRpcCode(int32_t code, absl::string_view message) {
  if (code == 0) {
    return message.empty() ? absl::OkStatus() : absl::UnknownError(message);
  }
  constexpr int32_t kLastCode =
      static_cast<int32_t>(absl::StatusCode::kUnauthenticated);
  if (code < 0 || code > kLastCode) {
    return absl::UnknownError(message);
  }
  return absl::Status(static_cast<absl::StatusCode>(code), message);
}

}  // namespace client
}  // namespace entitysync
