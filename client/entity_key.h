// EntityKey names one entity on the client side: its type and its id within
// that type, as in entitysync.v1.EntityKey, but hashable and comparable so it
// can key maps. id "*" means every id of the entity (a wildcard subscription).
//
// Plain value type; thread-compatible.
#ifndef ENTITYSYNC_CLIENT_ENTITY_KEY_H_
#define ENTITYSYNC_CLIENT_ENTITY_KEY_H_

#include <string>
#include <utility>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "entitysync/v1/entitysync.pb.h"

namespace entitysync {
namespace client {

struct EntityKey {
  std::string entity;
  std::string id;

  bool is_wildcard() const { return id == "*"; }

  friend bool operator==(const EntityKey& a, const EntityKey& b) {
    return a.entity == b.entity && a.id == b.id;
  }
  friend bool operator!=(const EntityKey& a, const EntityKey& b) {
    return !(a == b);
  }
  template <typename H>
  friend H AbslHashValue(H h, const EntityKey& key) {
    return H::combine(std::move(h), key.entity, key.id);
  }
};

// Parses "ENTITY/ID", splitting at the first '/' so that ids may contain '/'.
// Both parts must be non-empty.
absl::StatusOr<EntityKey> ParseEntityKey(absl::string_view text);

// "ENTITY/ID", the inverse of ParseEntityKey.
std::string EntityKeyToString(const EntityKey& key);

v1::EntityKey ToProto(const EntityKey& key);
EntityKey FromProto(const v1::EntityKey& key);

}  // namespace client
}  // namespace entitysync

#endif  // ENTITYSYNC_CLIENT_ENTITY_KEY_H_
