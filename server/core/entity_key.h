// Validation and the internal string form of entity keys.
//
// KeyString(key) is "entity/id". Entities may not contain '/', so the form is
// unambiguous and the entity is everything before the first '/'. All
// functions are pure and thread-safe.
#ifndef ENTITYSYNC_SERVER_CORE_ENTITY_KEY_H_
#define ENTITYSYNC_SERVER_CORE_ENTITY_KEY_H_

#include <string>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "common/utf8.h"
#include "entitysync/v1/entitysync.pb.h"
#include "server/core/limits.h"

namespace entitysync {

inline constexpr absl::string_view kWildcardId = "*";

// What a key may be used for: subscriptions accept the wildcard id "*",
// notifications name one concrete id.
enum class KeyUse { kSubscribe, kNotify };

// INVALID_ARGUMENT naming what is wrong: empty or oversized entity or id,
// characters outside [A-Za-z0-9_-] in the entity, invalid UTF-8, or "*" in a
// notification.
absl::Status ValidateKey(const v1::EntityKey& key, const Limits& limits,
                         KeyUse use);

std::string KeyString(const v1::EntityKey& key);
absl::string_view EntityOfKeyString(absl::string_view key_string);
// The key back from KeyString(key).
v1::EntityKey KeyOfKeyString(absl::string_view key_string);
bool IsWildcard(const v1::EntityKey& key);
v1::EntityKey WildcardKey(absl::string_view entity);
// A readable form for errors and logs: `items/100`, with the id cut to 64
// bytes.
std::string DescribeKey(const v1::EntityKey& key);

}  // namespace entitysync

#endif  // ENTITYSYNC_SERVER_CORE_ENTITY_KEY_H_
