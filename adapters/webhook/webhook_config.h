// The relay's configuration: webhook_config.proto parsed from text format,
// validated, with defaults applied and secrets (header values and stream
// credentials from the environment) resolved, as one EndpointSpec per
// endpoint.
//
// Errors: INVALID_ARGUMENT naming the file and either the line and column
// (syntax) or the field path, e.g.
//   hooks.textproto: endpoints[1] "audit": discard_codes: 500 is also a
//   success code
// Messages name environment variables but never their values.
//
// Plain functions and value types; thread-compatible.
#ifndef ENTITYSYNC_ADAPTERS_WEBHOOK_WEBHOOK_CONFIG_H_
#define ENTITYSYNC_ADAPTERS_WEBHOOK_WEBHOOK_CONFIG_H_

#include <cstddef>
#include <string>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_set.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "adapters/webhook/http_url.h"
#include "client/entity_key.h"

namespace entitysync {
namespace webhook {

inline constexpr absl::Duration kDefaultRequestTimeout = absl::Seconds(10);
inline constexpr absl::Duration kDefaultInitialBackoff =
    absl::Milliseconds(500);
inline constexpr absl::Duration kDefaultMaxBackoff = absl::Seconds(30);
inline constexpr int kDefaultMaxAttempts = 10;
inline constexpr size_t kDefaultMaxInFlight = 8;
inline constexpr size_t kDefaultMaxPendingKeys = 10000;

struct RetryOptions {
  absl::Duration initial_backoff = kDefaultInitialBackoff;
  absl::Duration max_backoff = kDefaultMaxBackoff;
  int max_attempts = kDefaultMaxAttempts;
  // absl::InfiniteDuration(): no age limit.
  absl::Duration max_age = absl::InfiniteDuration();
};

// What an HTTP status means for a delivery.
enum class ResponseClass {
  kSuccess,  // delivered
  kDiscard,  // refused for good: dropped, not retried
  kRetry,
};

struct EndpointSpec {
  std::string name;
  std::string url;  // as configured, for logs (no credentials allowed in it)
  HttpUrl http;
  std::vector<client::EntityKey> keys;
  // Resolved values: secrets, never logged.
  std::vector<std::pair<std::string, std::string>> headers;
  // Empty: any 2xx.
  absl::flat_hash_set<int> success_codes;
  absl::flat_hash_set<int> discard_codes;
  RetryOptions retry;
  absl::Duration request_timeout = kDefaultRequestTimeout;
  // `authorization` of the Subscribe stream; a secret. Empty: none.
  std::string credentials;
  size_t max_in_flight = kDefaultMaxInFlight;
  size_t max_pending_keys = kDefaultMaxPendingKeys;

  ResponseClass Classify(int status) const;
};

// `source` names the text in errors (the file name).
absl::StatusOr<std::vector<EndpointSpec>> ParseWebhookConfig(
    absl::string_view text, absl::string_view source);

// Reads `path` and parses it; NOT_FOUND-like errors for an unreadable file
// are INVALID_ARGUMENT too, since they are the operator's to fix.
absl::StatusOr<std::vector<EndpointSpec>> LoadWebhookConfig(
    const std::string& path);

}  // namespace webhook
}  // namespace entitysync

#endif  // ENTITYSYNC_ADAPTERS_WEBHOOK_WEBHOOK_CONFIG_H_
