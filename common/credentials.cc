#include "common/credentials.h"

#include "absl/strings/str_cat.h"

namespace entitysync {

std::string ReadAuthorization(const grpc::ServerContextBase& context) {
  const auto& metadata = context.client_metadata();
  auto it = metadata.find("authorization");
  if (it == metadata.end()) return {};
  return std::string(it->second.data(), it->second.size());
}

absl::Status CheckCredentialsSize(absl::string_view what,
                                  absl::string_view credentials, size_t limit) {
  if (credentials.size() <= limit) {
    return absl::OkStatus();
  }
  return absl::InvalidArgumentError(absl::StrCat(
      what, " is ", credentials.size(), " bytes; the limit is ", limit));
}

}  // namespace entitysync
