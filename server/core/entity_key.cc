#include "server/core/entity_key.h"

#include "absl/strings/str_cat.h"

namespace entitysync {

namespace {

bool IsEntityChar(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
         (c >= '0' && c <= '9') || c == '_' || c == '-';
}

}  // namespace

absl::Status ValidateKey(const v1::EntityKey& key, const Limits& limits,
                         KeyUse use) {
  const std::string& entity = key.entity();
  if (entity.empty()) return absl::InvalidArgumentError("key.entity is empty");
  if (entity.size() > limits.max_entity_bytes) {
    return absl::InvalidArgumentError(
        absl::StrCat("key.entity is ", entity.size(), " bytes; the limit is ",
                     limits.max_entity_bytes));
  }
  for (char c : entity) {
    if (!IsEntityChar(c)) {
      return absl::InvalidArgumentError(
          "key.entity may contain only A-Z a-z 0-9 _ -");
    }
  }
  const std::string& id = key.id();
  if (id.empty()) return absl::InvalidArgumentError("key.id is empty");
  if (id.size() > limits.max_id_bytes) {
    return absl::InvalidArgumentError(absl::StrCat(
        "key.id is ", id.size(), " bytes; the limit is ", limits.max_id_bytes));
  }
  if (!IsValidUtf8(id)) {
    return absl::InvalidArgumentError("key.id is not valid UTF-8");
  }
  if (use == KeyUse::kNotify && id == kWildcardId) {
    return absl::InvalidArgumentError(
        "key.id \"*\" is a subscription wildcard, not an id to notify");
  }
  return absl::OkStatus();
}

std::string KeyString(const v1::EntityKey& key) {
  return absl::StrCat(key.entity(), "/", key.id());
}

absl::string_view EntityOfKeyString(absl::string_view key_string) {
  return key_string.substr(0, key_string.find('/'));
}

v1::EntityKey KeyOfKeyString(absl::string_view key_string) {
  const size_t slash = key_string.find('/');
  v1::EntityKey key;
  key.set_entity(std::string(key_string.substr(0, slash)));
  if (slash != absl::string_view::npos) {
    key.set_id(std::string(key_string.substr(slash + 1)));
  }
  return key;
}

bool IsWildcard(const v1::EntityKey& key) { return key.id() == kWildcardId; }

v1::EntityKey WildcardKey(absl::string_view entity) {
  v1::EntityKey key;
  key.set_entity(std::string(entity));
  key.set_id(std::string(kWildcardId));
  return key;
}

std::string DescribeKey(const v1::EntityKey& key) {
  absl::string_view id = key.id();
  if (id.size() > 64) {
    return absl::StrCat(key.entity(), "/", TruncateUtf8(id, 64), "...");
  }
  return absl::StrCat(key.entity(), "/", id);
}

}  // namespace entitysync
