#include "examples/items/items_store.h"

#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "common/status_macros.h"
#include "common/utf8.h"

namespace entitysync::examples {
namespace {

// `deleted` marks tombstones: the row keeps the item's last version so that
// a re-created item continues above it.
constexpr char kSchema[] = R"sql(
CREATE TABLE IF NOT EXISTS items (
  id TEXT PRIMARY KEY,
  name TEXT NOT NULL,
  price_cents INTEGER NOT NULL DEFAULT 0,
  version INTEGER NOT NULL,
  acl TEXT NOT NULL DEFAULT '',
  deleted INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS items_by_version ON items(version);
CREATE TABLE IF NOT EXISTS item_tags (
  item_id TEXT,
  pos INTEGER,
  tag TEXT,
  PRIMARY KEY (item_id, pos)
);
)sql";

// One result row per (item, tag), items without tags once with a NULL tag;
// ReadItems folds them back into items.
constexpr char kSelectItems[] =
    "SELECT i.id, i.name, i.price_cents, i.version, i.acl, i.deleted, t.tag "
    "FROM items i LEFT JOIN item_tags t ON t.item_id = i.id ";

// The entitysync limit on ids, so that every stored item can be subscribed.
constexpr size_t kMaxIdBytes = 1024;

absl::Status ValidateChange(const ItemChange& change) {
  if (change.id.empty() || change.id.size() > kMaxIdBytes) {
    return absl::InvalidArgumentError(
        absl::StrCat("item id must be 1 to ", kMaxIdBytes, " bytes"));
  }
  if (change.id == "*") {
    return absl::InvalidArgumentError(
        "item id \"*\" is reserved for wildcard subscriptions");
  }
  if (!IsValidUtf8(change.id)) {
    return absl::InvalidArgumentError("item id must be valid UTF-8");
  }
  if (change.acl.has_value()) {
    for (const std::string& credential : *change.acl) {
      if (credential.empty() || credential.find(',') != std::string::npos) {
        return absl::InvalidArgumentError(
            "access list entries must be non-empty and contain no comma");
      }
    }
  }
  return absl::OkStatus();
}

// Calls `sink` with each item of a kSelectItems query ordered by id, then
// tag position; stops early when `sink` returns false.
absl::Status ReadItems(SqliteStatement& select,
                       const std::function<bool(Item)>& sink) {
  std::optional<Item> current;
  while (true) {
    ASSIGN_OR_RETURN(bool has_row, select.Step());
    if (!has_row) break;
    std::string id = select.ColumnText(0);
    if (!current.has_value() || current->id != id) {
      if (current.has_value() && !sink(*std::move(current))) {
        return absl::OkStatus();
      }
      current.emplace();
      current->id = std::move(id);
      current->name = select.ColumnText(1);
      current->price_cents = select.ColumnInt64(2);
      current->version = static_cast<uint64_t>(select.ColumnInt64(3));
      std::vector<std::string> acl =
          absl::StrSplit(select.ColumnText(4), ',', absl::SkipEmpty());
      current->acl = std::move(acl);
      current->deleted = select.ColumnInt64(5) != 0;
    }
    if (!select.ColumnIsNull(6)) current->tags.push_back(select.ColumnText(6));
  }
  if (current.has_value()) sink(*std::move(current));
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<std::unique_ptr<ItemsStore>> ItemsStore::Open(
    const std::string& path, absl::Duration busy_timeout) {
  ASSIGN_OR_RETURN(std::unique_ptr<SqliteDb> db,
                   SqliteDb::Open(path, busy_timeout));
  // IMMEDIATE so that two processes creating the schema take turns.
  ASSIGN_OR_RETURN(
      SqliteTransaction transaction,
      SqliteTransaction::Begin(db.get(), SqliteTransaction::Mode::kWrite));
  RETURN_IF_ERROR(db->Exec(kSchema));
  RETURN_IF_ERROR(transaction.Commit());
  return std::unique_ptr<ItemsStore>(new ItemsStore(std::move(db)));
}

absl::StatusOr<uint64_t> ItemsStore::Upsert(const ItemChange& change) {
  RETURN_IF_ERROR(ValidateChange(change));
  absl::MutexLock lock(&mu_);
  ASSIGN_OR_RETURN(
      SqliteTransaction transaction,
      SqliteTransaction::Begin(db_.get(), SqliteTransaction::Mode::kWrite));
  ASSIGN_OR_RETURN(uint64_t version, UpsertLocked(change));
  RETURN_IF_ERROR(transaction.Commit());
  return version;
}

absl::StatusOr<uint64_t> ItemsStore::UpsertLocked(const ItemChange& change) {
  ASSIGN_OR_RETURN(std::optional<Item> existing, FindLocked(change.id));
  Item item;
  if (existing.has_value() && !existing->deleted) item = *std::move(existing);
  if (change.name.has_value()) item.name = *change.name;
  if (change.price_cents.has_value()) item.price_cents = *change.price_cents;
  if (change.acl.has_value()) item.acl = *change.acl;
  ASSIGN_OR_RETURN(uint64_t version, NextVersionLocked());

  ASSIGN_OR_RETURN(SqliteStatement upsert, db_->Prepare(R"sql(
      INSERT INTO items (id, name, price_cents, version, acl, deleted)
      VALUES (?1, ?2, ?3, ?4, ?5, 0)
      ON CONFLICT (id) DO UPDATE SET
        name = excluded.name, price_cents = excluded.price_cents,
        version = excluded.version, acl = excluded.acl, deleted = 0)sql"));
  upsert.Bind(1, change.id);
  upsert.Bind(2, item.name);
  upsert.Bind(3, item.price_cents);
  upsert.Bind(4, static_cast<int64_t>(version));
  upsert.Bind(5, absl::StrJoin(item.acl, ","));
  RETURN_IF_ERROR(upsert.Run());
  // Tombstones have no tags, so an unset `tags` on a re-created item leaves
  // it without any, like every other field.
  if (change.tags.has_value()) {
    RETURN_IF_ERROR(ReplaceTagsLocked(change.id, *change.tags));
  }
  return version;
}

absl::StatusOr<uint64_t> ItemsStore::Delete(absl::string_view id) {
  absl::MutexLock lock(&mu_);
  ASSIGN_OR_RETURN(
      SqliteTransaction transaction,
      SqliteTransaction::Begin(db_.get(), SqliteTransaction::Mode::kWrite));
  ASSIGN_OR_RETURN(std::optional<Item> existing, FindLocked(id));
  if (!existing.has_value() || existing->deleted) {
    return absl::NotFoundError(absl::StrCat("item ", id, " does not exist"));
  }
  ASSIGN_OR_RETURN(uint64_t version, NextVersionLocked());
  // The tombstone keeps nothing but its id and version.
  ASSIGN_OR_RETURN(SqliteStatement tombstone, db_->Prepare(R"sql(
      UPDATE items SET name = '', price_cents = 0, acl = '', deleted = 1,
                       version = ?2
      WHERE id = ?1)sql"));
  tombstone.Bind(1, id);
  tombstone.Bind(2, static_cast<int64_t>(version));
  RETURN_IF_ERROR(tombstone.Run());
  RETURN_IF_ERROR(ReplaceTagsLocked(id, {}));
  RETURN_IF_ERROR(transaction.Commit());
  return version;
}

absl::StatusOr<std::optional<Item>> ItemsStore::Find(absl::string_view id) {
  absl::MutexLock lock(&mu_);
  // A read transaction so that the item row and its tags come from the same
  // snapshot even while another process writes.
  ASSIGN_OR_RETURN(
      SqliteTransaction transaction,
      SqliteTransaction::Begin(db_.get(), SqliteTransaction::Mode::kRead));
  ASSIGN_OR_RETURN(std::optional<Item> item, FindLocked(id));
  RETURN_IF_ERROR(transaction.Commit());
  return item;
}

absl::StatusOr<std::optional<Item>> ItemsStore::FindLocked(
    absl::string_view id) {
  ASSIGN_OR_RETURN(SqliteStatement select,
                   db_->Prepare(absl::StrCat(
                       kSelectItems, "WHERE i.id = ?1 ORDER BY t.pos")));
  select.Bind(1, id);
  std::optional<Item> found;
  RETURN_IF_ERROR(ReadItems(select, [&found](Item item) {
    found = std::move(item);
    return false;
  }));
  return found;
}

absl::StatusOr<ItemListing> ItemsStore::ListLive(
    const std::function<bool(const Item&)>& keep, size_t limit) {
  absl::MutexLock lock(&mu_);
  ASSIGN_OR_RETURN(
      SqliteTransaction transaction,
      SqliteTransaction::Begin(db_.get(), SqliteTransaction::Mode::kRead));
  ItemListing listing;
  ASSIGN_OR_RETURN(SqliteStatement max_version,
                   db_->Prepare("SELECT COALESCE(MAX(version), 0) FROM items"));
  ASSIGN_OR_RETURN(bool has_row, max_version.Step());
  if (has_row) {
    listing.max_version = static_cast<uint64_t>(max_version.ColumnInt64(0));
  }
  if (limit > 0) {
    ASSIGN_OR_RETURN(
        SqliteStatement select,
        db_->Prepare(absl::StrCat(kSelectItems,
                                  "WHERE i.deleted = 0 ORDER BY i.id, t.pos")));
    RETURN_IF_ERROR(ReadItems(select, [&](Item item) {
      if (keep(item)) listing.items.push_back(std::move(item));
      return listing.items.size() < limit;
    }));
  }
  RETURN_IF_ERROR(transaction.Commit());
  return listing;
}

absl::StatusOr<bool> ItemsStore::InsertIfEmpty(
    absl::Span<const ItemChange> items) {
  for (const ItemChange& change : items) {
    RETURN_IF_ERROR(ValidateChange(change));
  }
  absl::MutexLock lock(&mu_);
  // The emptiness check and the inserts share one write transaction, so two
  // concurrent seeders cannot both insert.
  ASSIGN_OR_RETURN(
      SqliteTransaction transaction,
      SqliteTransaction::Begin(db_.get(), SqliteTransaction::Mode::kWrite));
  ASSIGN_OR_RETURN(SqliteStatement any,
                   db_->Prepare("SELECT 1 FROM items LIMIT 1"));
  ASSIGN_OR_RETURN(bool not_empty, any.Step());
  if (not_empty) return false;
  for (const ItemChange& change : items) {
    RETURN_IF_ERROR(UpsertLocked(change).status());
  }
  RETURN_IF_ERROR(transaction.Commit());
  return true;
}

absl::StatusOr<uint64_t> ItemsStore::NextVersionLocked() {
  ASSIGN_OR_RETURN(SqliteStatement select,
                   db_->Prepare("SELECT COALESCE(MAX(version), 0) FROM items"));
  ASSIGN_OR_RETURN(bool has_row, select.Step());
  if (!has_row) return absl::InternalError("sqlite: MAX(version) gave no row");
  return static_cast<uint64_t>(select.ColumnInt64(0)) + 1;
}

absl::Status ItemsStore::ReplaceTagsLocked(
    absl::string_view id, const std::vector<std::string>& tags) {
  ASSIGN_OR_RETURN(SqliteStatement clear,
                   db_->Prepare("DELETE FROM item_tags WHERE item_id = ?1"));
  clear.Bind(1, id);
  RETURN_IF_ERROR(clear.Run());
  for (size_t pos = 0; pos < tags.size(); ++pos) {
    ASSIGN_OR_RETURN(
        SqliteStatement insert,
        db_->Prepare(
            "INSERT INTO item_tags (item_id, pos, tag) VALUES (?1, ?2, ?3)"));
    insert.Bind(1, id);
    insert.Bind(2, static_cast<int64_t>(pos));
    insert.Bind(3, tags[pos]);
    RETURN_IF_ERROR(insert.Run());
  }
  return absl::OkStatus();
}

}  // namespace entitysync::examples
