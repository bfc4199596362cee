#include "server/resolve/entity_table.h"

#include <utility>

namespace entitysync {

void EntityTable::Add(v1::EntityConfig config,
                      std::shared_ptr<ResolverClient> client) {
  std::string name = config.name();
  routes_[std::move(name)] = EntityRoute{std::move(config), std::move(client)};
}

const EntityRoute* EntityTable::Find(absl::string_view entity) const {
  auto it = routes_.find(entity);
  return it == routes_.end() ? nullptr : &it->second;
}

}  // namespace entitysync
