#include "server/rpc/internal_auth.h"

#include <fstream>

#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"

namespace entitysync {
namespace {

constexpr char kAuthorization[] = "authorization";
constexpr absl::string_view kBearer = "Bearer ";
// A token file larger than this is not a token (a wrong path, say).
constexpr size_t kMaxTokenBytes = 4096;

// Equal without leaking, through timing, where the first difference is.
bool ConstantTimeEquals(absl::string_view a, absl::string_view b) {
  unsigned char diff = a.size() == b.size() ? 0 : 1;
  for (size_t i = 0; i < a.size(); ++i) {
    diff |= static_cast<unsigned char>(a[i]) ^
            static_cast<unsigned char>(b.empty() ? 0 : b[i % b.size()]);
  }
  return diff == 0;
}

}  // namespace

absl::StatusOr<InternalAuth> InternalAuth::FromFile(const std::string& path) {
  if (path.empty()) return InternalAuth();
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    return absl::InvalidArgumentError(
        absl::StrCat("--internal_token_file: cannot read ", path));
  }
  // Read at most one byte past the limit: a wrong path (a device, a huge
  // file) must not hang the start-up.
  std::string raw(kMaxTokenBytes + 1, '\0');
  in.read(raw.data(), static_cast<std::streamsize>(raw.size()));
  raw.resize(static_cast<size_t>(in.gcount()));
  if (raw.size() > kMaxTokenBytes) {
    return absl::InvalidArgumentError(
        absl::StrCat("--internal_token_file: ", path, " holds more than ",
                     kMaxTokenBytes, " bytes; not a token"));
  }
  std::string token(absl::StripAsciiWhitespace(raw));
  if (token.empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat("--internal_token_file: ", path, " is empty"));
  }
  if (token.size() > kMaxTokenBytes) {
    return absl::InvalidArgumentError(
        absl::StrCat("--internal_token_file: ", path, " holds more than ",
                     kMaxTokenBytes, " bytes; not a token"));
  }
  for (const char c : token) {
    // gRPC metadata values are printable ASCII.
    if (c < 0x21 || c > 0x7e) {
      return absl::InvalidArgumentError(absl::StrCat(
          "--internal_token_file: ", path,
          " holds a character a gRPC metadata value cannot carry"));
    }
  }
  return InternalAuth(std::move(token));
}

grpc::Status InternalAuth::Check(const grpc::ServerContextBase& context) const {
  if (!enabled()) return grpc::Status::OK;
  const auto& metadata = context.client_metadata();
  const auto it = metadata.find(kAuthorization);
  if (it == metadata.end()) return Check({}, false);
  return Check(absl::string_view(it->second.data(), it->second.size()), true);
}

grpc::Status InternalAuth::Check(absl::string_view authorization,
                                 bool present) const {
  if (!enabled()) return grpc::Status::OK;
  if (!present) {
    return grpc::Status(grpc::StatusCode::UNAUTHENTICATED,
                        "this replica requires the internal token in the "
                        "`authorization` metadata");
  }
  absl::string_view presented = authorization;
  // The scheme is case-insensitive (RFC 7235).
  if (absl::StartsWithIgnoreCase(presented, kBearer)) {
    presented.remove_prefix(kBearer.size());
  }
  if (!ConstantTimeEquals(presented, token_)) {
    return grpc::Status(grpc::StatusCode::UNAUTHENTICATED,
                        "the `authorization` metadata is not the internal "
                        "token");
  }
  return grpc::Status::OK;
}

}  // namespace entitysync
