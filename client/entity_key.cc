#include "client/entity_key.h"

#include "absl/strings/str_cat.h"

namespace entitysync {
namespace client {

absl::StatusOr<EntityKey> ParseEntityKey(absl::string_view text) {
  const size_t slash = text.find('/');
  if (slash == absl::string_view::npos || slash == 0 ||
      slash + 1 == text.size()) {
    return absl::InvalidArgumentError(
        absl::StrCat("key \"", text, "\" is not of the form ENTITY/ID"));
  }
  return EntityKey{std::string(text.substr(0, slash)),
                   std::string(text.substr(slash + 1))};
}

std::string EntityKeyToString(const EntityKey& key) {
  return absl::StrCat(key.entity, "/", key.id);
}

v1::EntityKey ToProto(const EntityKey& key) {
  v1::EntityKey proto;
  proto.set_entity(key.entity);
  proto.set_id(key.id);
  return proto;
}

EntityKey FromProto(const v1::EntityKey& key) {
  return EntityKey{key.entity(), key.id()};
}

}  // namespace client
}  // namespace entitysync
