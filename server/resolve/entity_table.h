// EntityTable: entity type → its configuration and resolver client. Built
// once at start-up and read-only afterwards, so it is safe to share between
// threads. An empty table is the open mode of DESIGN.md: any valid entity is
// accepted and only Notify's inline rows are pushed.
#ifndef ENTITYSYNC_SERVER_RESOLVE_ENTITY_TABLE_H_
#define ENTITYSYNC_SERVER_RESOLVE_ENTITY_TABLE_H_

#include <memory>
#include <string>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/string_view.h"
#include "entitysync/v1/config.pb.h"
#include "server/resolve/resolver_client.h"

namespace entitysync {

struct EntityRoute {
  v1::EntityConfig config;
  std::shared_ptr<ResolverClient> client;
};

class EntityTable {
 public:
  void Add(v1::EntityConfig config, std::shared_ptr<ResolverClient> client);
  // nullptr when the entity is not configured.
  const EntityRoute* Find(absl::string_view entity) const;
  bool open_mode() const { return routes_.empty(); }

 private:
  absl::flat_hash_map<std::string, EntityRoute> routes_;
};

}  // namespace entitysync

#endif  // ENTITYSYNC_SERVER_RESOLVE_ENTITY_TABLE_H_
