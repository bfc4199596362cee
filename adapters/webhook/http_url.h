// HttpUrl is a parsed http:// URL as the webhook relay needs it to open a
// connection and write a request line: host, port and request target.
// ParseHttpUrl accepts http://host[:port][/path][?query] (IPv6 hosts in
// brackets); anything else, https:// included, is INVALID_ARGUMENT with a
// message that says what is wrong. Plain value type; thread-compatible.
#ifndef ENTITYSYNC_ADAPTERS_WEBHOOK_HTTP_URL_H_
#define ENTITYSYNC_ADAPTERS_WEBHOOK_HTTP_URL_H_

#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace entitysync {
namespace webhook {

struct HttpUrl {
  // Without brackets for IPv6, e.g. "::1".
  std::string host;
  std::string port = "80";
  // Path and query, at least "/".
  std::string target = "/";
  // The Host header: host[:port] as written in the URL.
  std::string host_header;
};

absl::StatusOr<HttpUrl> ParseHttpUrl(absl::string_view url);

}  // namespace webhook
}  // namespace entitysync

#endif  // ENTITYSYNC_ADAPTERS_WEBHOOK_HTTP_URL_H_
