#include "adapters/webhook/http_url.h"

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"

namespace entitysync {
namespace webhook {
namespace {

absl::Status Invalid(absl::string_view message) {
  return absl::InvalidArgumentError(message);
}

bool IsHostChar(char c) {
  return absl::ascii_isalnum(static_cast<unsigned char>(c)) || c == '-' ||
         c == '.' || c == '_';
}

}  // namespace

absl::StatusOr<HttpUrl> ParseHttpUrl(absl::string_view url) {
  for (char c : url) {
    if (static_cast<unsigned char>(c) <= 0x20 ||
        static_cast<unsigned char>(c) >= 0x7f) {
      return Invalid(
          "URL contains a space, control or non-ASCII character "
          "(percent-encode it)");
    }
  }
  const std::string lower = absl::AsciiStrToLower(url.substr(0, 8));
  if (absl::StartsWith(lower, "https://")) {
    return Invalid(
        "https:// is not supported: this build has no TLS client; use "
        "http:// (e.g. to a local TLS-terminating proxy)");
  }
  if (!absl::StartsWith(lower, "http://")) {
    return Invalid("URL must start with http://");
  }
  absl::string_view rest = url.substr(7);
  size_t authority_end = rest.find_first_of("/?#");
  absl::string_view authority = rest.substr(0, authority_end);
  absl::string_view target = authority_end == absl::string_view::npos
                                 ? absl::string_view()
                                 : rest.substr(authority_end);
  if (absl::StrContains(target, '#')) {
    return Invalid("URL must not contain a fragment (#...)");
  }
  if (absl::StrContains(authority, '@')) {
    return Invalid(
        "URL must not contain user:password@ (use a header, e.g. "
        "Authorization with value_from_env)");
  }
  HttpUrl parsed;
  parsed.host_header = std::string(authority);
  absl::string_view port;
  if (absl::StartsWith(authority, "[")) {
    size_t close = authority.find(']');
    if (close == absl::string_view::npos) {
      return Invalid("URL has an unterminated IPv6 address ([...)");
    }
    parsed.host = std::string(authority.substr(1, close - 1));
    absl::string_view after = authority.substr(close + 1);
    if (!after.empty()) {
      if (after[0] != ':') return Invalid("URL has junk after the IPv6 host");
      port = after.substr(1);
      if (port.empty()) return Invalid("URL has an empty port");
    }
    if (parsed.host.empty()) return Invalid("URL has an empty host");
  } else {
    size_t colon = authority.find(':');
    parsed.host = std::string(authority.substr(0, colon));
    if (colon != absl::string_view::npos) {
      port = authority.substr(colon + 1);
      if (port.empty()) return Invalid("URL has an empty port");
    }
    if (parsed.host.empty()) return Invalid("URL has an empty host");
    for (char c : parsed.host) {
      if (!IsHostChar(c)) {
        return Invalid(absl::StrCat("URL host has an invalid character '",
                                    std::string(1, c), "'"));
      }
    }
  }
  if (!port.empty()) {
    int number = 0;
    if (!absl::SimpleAtoi(port, &number) || number < 1 || number > 65535) {
      return Invalid(absl::StrCat("URL port \"", port,
                                  "\" is not a number from 1 to 65535"));
    }
    parsed.port = absl::StrCat(number);
  }
  if (target.empty()) {
    parsed.target = "/";
  } else if (target[0] == '?') {
    parsed.target = absl::StrCat("/", target);
  } else {
    parsed.target = std::string(target);
  }
  return parsed;
}

}  // namespace webhook
}  // namespace entitysync
