// ItemsStore: the example's SQLite data layer, a table of items (id, name,
// price, tags, access list) where every write stamps a new version.
//
// Versions come from one sequence per database file: a write gets 1 + the
// highest version ever stored (deleted items keep a tombstone row holding
// theirs). So an item's versions only increase, across delete and
// re-create, and the highest version in the file changes with every write,
// which makes it a valid version for the wildcard ("every item") snapshot.
//
// Ownership: ItemsStore owns one sqlite connection. Several ItemsStore
// instances, in one or several processes, may use the same file at once:
// WAL journaling lets readers proceed during a write, and writers queue
// behind each other for up to the busy timeout.
//
// Errors: INVALID_ARGUMENT for bad input, NOT_FOUND for deleting an item
// that does not exist, UNAVAILABLE when the file stayed locked past the busy
// timeout, INTERNAL for other sqlite failures.
//
// Thread-safe: a mutex serializes use of the connection.
#ifndef ENTITYSYNC_EXAMPLES_ITEMS_ITEMS_STORE_H_
#define ENTITYSYNC_EXAMPLES_ITEMS_ITEMS_STORE_H_

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "absl/types/span.h"
#include "examples/items/sqlite.h"

namespace entitysync::examples {

struct Item {
  std::string id;
  std::string name;
  int64_t price_cents = 0;
  uint64_t version = 0;
  // Credentials allowed to see the item; empty means public.
  std::vector<std::string> acl;
  // In order.
  std::vector<std::string> tags;
  // A tombstone: only `id` and `version` are meaningful.
  bool deleted = false;
};

// An upsert. Fields left unset keep their current value, or take the
// default (empty / 0 / public) when the item does not exist or was deleted.
struct ItemChange {
  std::string id;
  std::optional<std::string> name;
  std::optional<int64_t> price_cents;
  std::optional<std::vector<std::string>> tags;
  std::optional<std::vector<std::string>> acl;
};

// Live items matching a filter, and the highest version in the file, read
// in one transaction so that the version covers exactly these items.
struct ItemListing {
  std::vector<Item> items;
  uint64_t max_version = 0;
};

class ItemsStore {
 public:
  static constexpr absl::Duration kDefaultBusyTimeout = absl::Seconds(5);

  // Opens or creates the database at `path` and creates the schema if it is
  // missing.
  static absl::StatusOr<std::unique_ptr<ItemsStore>> Open(
      const std::string& path,
      absl::Duration busy_timeout = kDefaultBusyTimeout);

  ItemsStore(const ItemsStore&) = delete;
  ItemsStore& operator=(const ItemsStore&) = delete;

  // Creates or updates an item; returns its new version. Ids must be 1 to
  // 1024 bytes and not "*" (the wildcard); access list entries must be
  // non-empty and contain no comma.
  absl::StatusOr<uint64_t> Upsert(const ItemChange& change);

  // Deletes a live item, leaving a tombstone; returns the tombstone's
  // version. NOT_FOUND when the item does not exist or is already deleted.
  absl::StatusOr<uint64_t> Delete(absl::string_view id);

  // The item (live, or a tombstone with deleted = true), or nullopt when the
  // id was never stored.
  absl::StatusOr<std::optional<Item>> Find(absl::string_view id);

  // Up to `limit` live items, by id, for which `keep` returns true. `keep`
  // runs with the store's lock held and must not call into the store.
  absl::StatusOr<ItemListing> ListLive(
      const std::function<bool(const Item&)>& keep, size_t limit);

  // Inserts `items` in one transaction if the database holds no item rows
  // at all (not even tombstones); returns whether it did.
  absl::StatusOr<bool> InsertIfEmpty(absl::Span<const ItemChange> items);

 private:
  explicit ItemsStore(std::unique_ptr<SqliteDb> db) : db_(std::move(db)) {}

  absl::StatusOr<uint64_t> UpsertLocked(const ItemChange& change)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  absl::StatusOr<uint64_t> NextVersionLocked()
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  absl::StatusOr<std::optional<Item>> FindLocked(absl::string_view id)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  absl::Status ReplaceTagsLocked(absl::string_view id,
                                 const std::vector<std::string>& tags)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  absl::Mutex mu_;
  const std::unique_ptr<SqliteDb> db_ ABSL_PT_GUARDED_BY(mu_);
};

}  // namespace entitysync::examples

#endif  // ENTITYSYNC_EXAMPLES_ITEMS_ITEMS_STORE_H_
