// The resolver table: parsed from a text-format ServerConfig, validated, with
// defaults applied. Errors name the line and column (syntax) or the entry
// (semantics). Pure functions; thread-safe.
#ifndef ENTITYSYNC_SERVER_CORE_CONFIG_H_
#define ENTITYSYNC_SERVER_CORE_CONFIG_H_

#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "entitysync/v1/config.pb.h"

namespace entitysync {

inline constexpr uint32_t kDefaultResolverTimeoutMs = 2000;
// Shutdown waits for calls in flight; a bound on their deadline bounds it.
inline constexpr uint32_t kMaxBackendTimeoutMs = 60000;
inline constexpr uint32_t kDefaultMaxBatchKeys = 100;
inline constexpr uint32_t kDefaultMaxConcurrentResolves = 4;
inline constexpr uint32_t kDefaultMaxConcurrentSubscribeResolves = 64;

// INVALID_ARGUMENT for syntax errors, unknown fields, bad or duplicate entity
// names and missing targets.
absl::StatusOr<v1::ServerConfig> ParseServerConfig(absl::string_view text);
// NOT_FOUND / PERMISSION_DENIED when the file cannot be read, else as above
// with the path in the message.
absl::StatusOr<v1::ServerConfig> LoadServerConfig(const std::string& path);

}  // namespace entitysync

#endif  // ENTITYSYNC_SERVER_CORE_CONFIG_H_
