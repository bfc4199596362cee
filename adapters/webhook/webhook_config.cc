#include "adapters/webhook/webhook_config.h"

#include <algorithm>
#include <cstdlib>
#include <fstream>
#include <sstream>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "adapters/webhook/webhook_config.pb.h"
#include "common/credentials.h"
#include "google/protobuf/io/tokenizer.h"
#include "google/protobuf/text_format.h"

namespace entitysync {
namespace webhook {
namespace {

constexpr uint32_t kMaxTimeoutMs = 10 * 60 * 1000;
constexpr uint32_t kMaxInFlightLimit = 1000;
// The replicas' default --max_credentials_bytes.
constexpr size_t kMaxCredentialsBytes = 4096;
constexpr uint32_t kMaxPendingKeysLimit = 10000000;

class ErrorCollector : public google::protobuf::io::ErrorCollector {
 public:
  void AddError(int line, google::protobuf::io::ColumnNumber column,
                const std::string& message) override {
    if (first_.empty()) {
      first_ = absl::StrCat("line ", line + 1, ", column ", column + 1, ": ",
                            message);
    }
  }
  const std::string& first() const { return first_; }

 private:
  std::string first_;
};

bool IsTokenChar(char c) {
  return absl::ascii_isalnum(static_cast<unsigned char>(c)) ||
         absl::StrContains("!#$%&'*+-.^_`|~", c);
}

bool IsNameChar(char c) {
  return absl::ascii_isalnum(static_cast<unsigned char>(c)) || c == '-' ||
         c == '_' || c == '.';
}

// Headers the relay writes itself.
bool IsReservedHeader(absl::string_view name) {
  const std::string lower = absl::AsciiStrToLower(name);
  return lower == "host" || lower == "content-type" ||
         lower == "content-length" || lower == "transfer-encoding" ||
         lower == "connection" || lower == "te" || lower == "upgrade" ||
         lower == "keep-alive" || absl::StartsWith(lower, "x-entitysync-");
}

// An environment variable's value, or an error naming the variable only.
absl::StatusOr<std::string> FromEnv(const std::string& variable,
                                    absl::string_view where) {
  const char* value = std::getenv(variable.c_str());
  if (value == nullptr || *value == '\0') {
    return absl::InvalidArgumentError(absl::StrCat(
        where, ": environment variable ", variable, " is not set or empty"));
  }
  return std::string(value);
}

absl::Status CheckCodes(const google::protobuf::RepeatedField<uint32_t>& codes,
                        absl::string_view where,
                        absl::flat_hash_set<int>* out) {
  for (uint32_t code : codes) {
    if (code < 100 || code > 599) {
      return absl::InvalidArgumentError(absl::StrCat(
          where, ": ", code, " is not an HTTP status (100 to 599)"));
    }
    out->insert(static_cast<int>(code));
  }
  return absl::OkStatus();
}

absl::StatusOr<EndpointSpec> ToSpec(const Endpoint& endpoint,
                                    const std::string& where) {
  EndpointSpec spec;
  spec.name = endpoint.name();
  spec.url = endpoint.url();
  absl::StatusOr<HttpUrl> url = ParseHttpUrl(endpoint.url());
  if (!url.ok()) {
    return absl::InvalidArgumentError(
        absl::StrCat(where, ": url: ", url.status().message()));
  }
  spec.http = *std::move(url);

  if (endpoint.keys_size() == 0) {
    return absl::InvalidArgumentError(
        absl::StrCat(where,
                     ": no keys (add keys { entity: \"...\" id: "
                     "\"...\" }, id \"*\" for every id)"));
  }
  absl::flat_hash_set<client::EntityKey> seen_keys;
  for (int i = 0; i < endpoint.keys_size(); ++i) {
    const Key& key = endpoint.keys(i);
    const std::string key_where = absl::StrCat(where, ": keys[", i, "]");
    if (key.entity().empty() || key.id().empty()) {
      return absl::InvalidArgumentError(
          absl::StrCat(key_where, ": entity and id must not be empty"));
    }
    client::EntityKey parsed{key.entity(), key.id()};
    if (!seen_keys.insert(parsed).second) {
      return absl::InvalidArgumentError(absl::StrCat(
          key_where, ": duplicate key ", client::EntityKeyToString(parsed)));
    }
    spec.keys.push_back(std::move(parsed));
  }

  absl::flat_hash_set<std::string> header_names;
  for (int i = 0; i < endpoint.headers_size(); ++i) {
    const Header& header = endpoint.headers(i);
    const std::string header_where =
        absl::StrCat(where, ": headers[", i, "] \"", header.name(), "\"");
    if (header.name().empty()) {
      return absl::InvalidArgumentError(
          absl::StrCat(header_where, ": empty name"));
    }
    for (char c : header.name()) {
      if (!IsTokenChar(c)) {
        return absl::InvalidArgumentError(
            absl::StrCat(header_where, ": invalid character in the name"));
      }
    }
    if (IsReservedHeader(header.name())) {
      return absl::InvalidArgumentError(
          absl::StrCat(header_where, ": the relay sets this header itself"));
    }
    if (!header_names.insert(absl::AsciiStrToLower(header.name())).second) {
      return absl::InvalidArgumentError(
          absl::StrCat(header_where, ": duplicate header"));
    }
    std::string value;
    switch (header.source_case()) {
      case Header::kValue:
        value = header.value();
        break;
      case Header::kValueFromEnv: {
        absl::StatusOr<std::string> from_env =
            FromEnv(header.value_from_env(), header_where);
        if (!from_env.ok()) return from_env.status();
        value = *std::move(from_env);
        break;
      }
      case Header::SOURCE_NOT_SET:
        return absl::InvalidArgumentError(
            absl::StrCat(header_where, ": set value or value_from_env"));
    }
    for (char c : value) {
      // Never echo the value: it may be a secret.
      if (c == '\r' || c == '\n' || c == '\0') {
        return absl::InvalidArgumentError(
            absl::StrCat(header_where, ": the value contains CR, LF or NUL"));
      }
    }
    spec.headers.emplace_back(header.name(), std::move(value));
  }

  if (absl::Status s = CheckCodes(endpoint.success_codes(),
                                  absl::StrCat(where, ": success_codes"),
                                  &spec.success_codes);
      !s.ok()) {
    return s;
  }
  if (endpoint.discard_codes().empty()) {
    spec.discard_codes = {400, 404, 410, 422};
  } else if (absl::Status s = CheckCodes(endpoint.discard_codes(),
                                         absl::StrCat(where, ": discard_codes"),
                                         &spec.discard_codes);
             !s.ok()) {
    return s;
  }
  for (int code : spec.discard_codes) {
    const bool success = spec.success_codes.empty()
                             ? (code >= 200 && code <= 299)
                             : spec.success_codes.contains(code);
    if (success) {
      return absl::InvalidArgumentError(absl::StrCat(
          where, ": discard_codes: ", code, " is also a success code"));
    }
  }

  const RetryPolicy& retry = endpoint.retry();
  if (retry.initial_backoff_ms() > 0) {
    spec.retry.initial_backoff = absl::Milliseconds(retry.initial_backoff_ms());
  }
  if (retry.max_backoff_ms() > 0) {
    spec.retry.max_backoff = absl::Milliseconds(retry.max_backoff_ms());
  }
  if (retry.initial_backoff_ms() > kMaxTimeoutMs ||
      retry.max_backoff_ms() > kMaxTimeoutMs) {
    return absl::InvalidArgumentError(absl::StrCat(
        where, ": retry: backoffs must be at most ", kMaxTimeoutMs, " ms"));
  }
  if (spec.retry.initial_backoff > spec.retry.max_backoff) {
    return absl::InvalidArgumentError(
        absl::StrCat(where, ": retry: initial_backoff_ms ",
                     absl::ToInt64Milliseconds(spec.retry.initial_backoff),
                     " is above max_backoff_ms ",
                     absl::ToInt64Milliseconds(spec.retry.max_backoff)));
  }
  if (retry.max_attempts() > 0) {
    spec.retry.max_attempts =
        static_cast<int>(std::min<uint32_t>(retry.max_attempts(), 1000000));
  }
  if (retry.max_age_ms() > 0) {
    spec.retry.max_age = absl::Milliseconds(retry.max_age_ms());
  }

  if (endpoint.request_timeout_ms() > kMaxTimeoutMs) {
    return absl::InvalidArgumentError(absl::StrCat(
        where, ": request_timeout_ms ", endpoint.request_timeout_ms(),
        " is over the limit of ", kMaxTimeoutMs));
  }
  if (endpoint.request_timeout_ms() > 0) {
    spec.request_timeout = absl::Milliseconds(endpoint.request_timeout_ms());
  }
  if (!endpoint.credentials_from_env().empty()) {
    absl::StatusOr<std::string> credentials =
        FromEnv(endpoint.credentials_from_env(),
                absl::StrCat(where, ": credentials_from_env"));
    if (!credentials.ok()) return credentials.status();
    // They travel as the stream's `authorization` metadata, which gRPC
    // takes only as printable ASCII (it would abort the process on anything
    // else). The error names the variable, never the value.
    for (const char c : *credentials) {
      if (c < 0x20 || c > 0x7e) {
        return absl::InvalidArgumentError(absl::StrCat(
            where, ": credentials_from_env: $", endpoint.credentials_from_env(),
            " holds a byte outside printable ASCII (a trailing CR from a "
            "CRLF file?); stream credentials must be printable ASCII"));
      }
    }
    // Refused here, with the replica's own message, rather than by every
    // stream the relay would open.
    if (absl::Status s = CheckCredentialsSize(
            absl::StrCat(where, ": credentials_from_env: $",
                         endpoint.credentials_from_env()),
            *credentials, kMaxCredentialsBytes);
        !s.ok()) {
      return s;
    }
    spec.credentials = *std::move(credentials);
  }
  if (endpoint.max_in_flight() > kMaxInFlightLimit) {
    return absl::InvalidArgumentError(
        absl::StrCat(where, ": max_in_flight ", endpoint.max_in_flight(),
                     " is over the limit of ", kMaxInFlightLimit));
  }
  if (endpoint.max_in_flight() > 0) {
    spec.max_in_flight = endpoint.max_in_flight();
  }
  if (endpoint.max_pending_keys() > kMaxPendingKeysLimit) {
    return absl::InvalidArgumentError(
        absl::StrCat(where, ": max_pending_keys ", endpoint.max_pending_keys(),
                     " is over the limit of ", kMaxPendingKeysLimit));
  }
  if (endpoint.max_pending_keys() > 0) {
    spec.max_pending_keys = endpoint.max_pending_keys();
  }
  return spec;
}

}  // namespace

ResponseClass EndpointSpec::Classify(int status) const {
  const bool success = success_codes.empty() ? (status >= 200 && status <= 299)
                                             : success_codes.contains(status);
  if (success) return ResponseClass::kSuccess;
  if (discard_codes.contains(status)) return ResponseClass::kDiscard;
  return ResponseClass::kRetry;
}

absl::StatusOr<std::vector<EndpointSpec>> ParseWebhookConfig(
    absl::string_view text, absl::string_view source) {
  WebhookConfig config;
  google::protobuf::TextFormat::Parser parser;
  ErrorCollector errors;
  parser.RecordErrorsTo(&errors);
  if (!parser.ParseFromString(std::string(text), &config)) {
    return absl::InvalidArgumentError(absl::StrCat(
        source, ": ", errors.first().empty() ? "parse error" : errors.first()));
  }
  if (config.endpoints_size() == 0) {
    return absl::InvalidArgumentError(
        absl::StrCat(source,
                     ": no endpoints (add endpoints { name: ... url: ... keys "
                     "{ ... } })"));
  }
  std::vector<EndpointSpec> specs;
  absl::flat_hash_set<std::string> names;
  for (int i = 0; i < config.endpoints_size(); ++i) {
    const Endpoint& endpoint = config.endpoints(i);
    const std::string where =
        absl::StrCat(source, ": endpoints[", i, "] \"", endpoint.name(), "\"");
    if (endpoint.name().empty()) {
      return absl::InvalidArgumentError(absl::StrCat(where, ": empty name"));
    }
    for (char c : endpoint.name()) {
      if (!IsNameChar(c)) {
        return absl::InvalidArgumentError(absl::StrCat(
            where, ": name may hold only letters, digits, '-', '_', '.'"));
      }
    }
    if (!names.insert(endpoint.name()).second) {
      return absl::InvalidArgumentError(
          absl::StrCat(where, ": duplicate name"));
    }
    absl::StatusOr<EndpointSpec> spec = ToSpec(endpoint, where);
    if (!spec.ok()) return spec.status();
    specs.push_back(*std::move(spec));
  }
  return specs;
}

absl::StatusOr<std::vector<EndpointSpec>> LoadWebhookConfig(
    const std::string& path) {
  std::ifstream in(path);
  if (!in) {
    return absl::InvalidArgumentError(
        absl::StrCat(path, ": cannot read the file"));
  }
  std::stringstream text;
  text << in.rdbuf();
  return ParseWebhookConfig(text.str(), path);
}

}  // namespace webhook
}  // namespace entitysync
