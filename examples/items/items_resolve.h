// The per-call logic of the items resolver: turns a ResolveRequest into one
// ResolvedKey per requested key, reading from an ItemsStore.
//
//   live item           FOUND, version, rows = [item JSON, then one tag JSON
//                       per tag in order]
//   deleted item        NOT_FOUND with the tombstone's version
//   never stored        NOT_FOUND, version 0
//   not visible         DENIED, no rows (see "Authorization" below)
//   id "*"              FOUND, version = highest version in the store, rows =
//                       the visible live items' JSON, by id, at most
//                       kMaxWildcardRows
//
// Authorization: an item with an access list is visible only to
// credentials in that list. It is checked for SUBSCRIBE and REAUTHORIZE,
// and for CHANGE when credentials are present (a per_credentials entity).
// CHANGE without credentials is made for every subscriber of a shared
// entity, each authorized when it subscribed, so nothing is withheld.
//
// Errors: INVALID_ARGUMENT for the whole call when a key is not of entity
// "items" or has an empty id (nothing of the call is answered); store
// errors as ItemsStore reports them.
//
// Thread-safe when the store is (ItemsStore is).
#ifndef ENTITYSYNC_EXAMPLES_ITEMS_ITEMS_RESOLVE_H_
#define ENTITYSYNC_EXAMPLES_ITEMS_ITEMS_RESOLVE_H_

#include <cstddef>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "entitysync/v1/resolver.pb.h"
#include "examples/items/items_store.h"

namespace entitysync::examples {

inline constexpr char kItemsEntity[] = "items";
inline constexpr char kJsonContentType[] = "application/json";
// Keeps a wildcard snapshot under entitysync's default row-bytes limit for
// reasonable item sizes.
inline constexpr size_t kMaxWildcardRows = 1000;

// Whether `credentials` may see an item with access list `acl` (empty:
// public).
bool MayView(const std::vector<std::string>& acl,
             absl::string_view credentials);

// Appends one result per key of `request` to `response`.
absl::Status ResolveItems(ItemsStore& store,
                          const entitysync::v1::ResolveRequest& request,
                          entitysync::v1::ResolveResponse* response);

}  // namespace entitysync::examples

#endif  // ENTITYSYNC_EXAMPLES_ITEMS_ITEMS_RESOLVE_H_
