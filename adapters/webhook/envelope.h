// The HTTP request the relay POSTs for one update: the body is the gateway's
// enveloped JSON update (adapters/gateway/PROTOCOL.md), e.g.
//
//   {"type":"update","key":{"entity":"items","id":"100"},"version":3,
//    "removed":false,"rows":[{"content_type":"application/json",
//    "json":{"name":"pen"}}]}
//
// (a row is "json" when its bytes are JSON, else "text" when UTF-8, else
// "base64"), and the headers say the key, version and attempt without
// parsing the body. Pure functions; thread-safe.
#ifndef ENTITYSYNC_ADAPTERS_WEBHOOK_ENVELOPE_H_
#define ENTITYSYNC_ADAPTERS_WEBHOOK_ENVELOPE_H_

#include <string>
#include <utility>
#include <vector>

#include "absl/strings/string_view.h"
#include "entitysync/v1/entitysync.pb.h"

namespace entitysync {
namespace webhook {

inline constexpr absl::string_view kKeyHeader = "X-Entitysync-Key";
inline constexpr absl::string_view kVersionHeader = "X-Entitysync-Version";
inline constexpr absl::string_view kAttemptHeader = "X-Entitysync-Attempt";

struct Envelope {
  std::string body;
  // Content-Type, User-Agent and the X-Entitysync-* headers; the endpoint's
  // configured headers are added by the caller.
  std::vector<std::pair<std::string, std::string>> headers;
};

Envelope BuildEnvelope(const v1::Update& update, int attempt);

// "entity/id" for the X-Entitysync-Key header: bytes outside printable
// ASCII, and '%', percent-encoded (RFC 3986 style).
std::string KeyHeaderValue(const v1::EntityKey& key);

}  // namespace webhook
}  // namespace entitysync

#endif  // ENTITYSYNC_ADAPTERS_WEBHOOK_ENVELOPE_H_
