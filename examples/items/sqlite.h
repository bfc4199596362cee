// Thin RAII wrappers over the sqlite3 C API that report errors as
// absl::Status, so the item store reads as SQL and not as error plumbing.
//
// SqliteDb owns one connection; SqliteStatement owns one prepared statement
// and must not outlive the SqliteDb that prepared it; SqliteTransaction rolls
// back unless committed.
//
// Errors: SQLITE_BUSY / SQLITE_LOCKED (another process held the file past
// the busy timeout) map to UNAVAILABLE, everything else to INTERNAL, with
// sqlite's message.
//
// Thread-safety: none. A connection and its statements are used by one
// thread at a time; the caller (ItemsStore) serializes access.
#ifndef ENTITYSYNC_EXAMPLES_ITEMS_SQLITE_H_
#define ENTITYSYNC_EXAMPLES_ITEMS_SQLITE_H_

#include <cstdint>
#include <memory>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"

struct sqlite3;
struct sqlite3_stmt;

namespace entitysync::examples {

class SqliteStatement {
 public:
  SqliteStatement(SqliteStatement&& other) noexcept;
  SqliteStatement& operator=(SqliteStatement&& other) noexcept;
  SqliteStatement(const SqliteStatement&) = delete;
  SqliteStatement& operator=(const SqliteStatement&) = delete;
  ~SqliteStatement();

  // Parameters are 1-based, as in sqlite. A failed bind is remembered and
  // returned by the next Step(), so a run of binds needs no checks.
  void Bind(int index, absl::string_view value);
  void Bind(int index, int64_t value);

  // Advances to the next result row: true when a row is available, false
  // when the statement is done.
  absl::StatusOr<bool> Step();

  // Runs a statement that returns no rows to completion.
  absl::Status Run();

  // Columns are 0-based, valid after Step() returned true.
  int64_t ColumnInt64(int index) const;
  std::string ColumnText(int index) const;
  bool ColumnIsNull(int index) const;

 private:
  friend class SqliteDb;
  SqliteStatement(sqlite3* db, sqlite3_stmt* stmt) : db_(db), stmt_(stmt) {}

  sqlite3* db_;
  sqlite3_stmt* stmt_;
  absl::Status bind_status_;
};

class SqliteDb {
 public:
  // Opens (creating if missing) the database file at `path` with WAL
  // journaling, so readers never wait for a writer in another process, and
  // a busy timeout, so writers from several processes take turns instead of
  // failing at once.
  static absl::StatusOr<std::unique_ptr<SqliteDb>> Open(
      const std::string& path, absl::Duration busy_timeout);

  SqliteDb(const SqliteDb&) = delete;
  SqliteDb& operator=(const SqliteDb&) = delete;
  ~SqliteDb();

  // Runs one or more statements that return no rows.
  absl::Status Exec(const char* sql);
  absl::StatusOr<SqliteStatement> Prepare(absl::string_view sql);

 private:
  explicit SqliteDb(sqlite3* db) : db_(db) {}

  sqlite3* const db_;
};

// BEGIN on construction via Begin(); ROLLBACK on destruction unless Commit()
// succeeded.
class SqliteTransaction {
 public:
  enum class Mode {
    // Takes a snapshot at the first read: consistent multi-statement reads.
    kRead,
    // Takes the write lock up front. A deferred transaction that later tries
    // to write can fail with SQLITE_BUSY without waiting; IMMEDIATE waits for
    // the lock under the busy timeout instead.
    kWrite,
  };

  static absl::StatusOr<SqliteTransaction> Begin(SqliteDb* db, Mode mode);

  SqliteTransaction(SqliteTransaction&& other) noexcept;
  SqliteTransaction& operator=(SqliteTransaction&&) = delete;
  SqliteTransaction(const SqliteTransaction&) = delete;
  SqliteTransaction& operator=(const SqliteTransaction&) = delete;
  ~SqliteTransaction();

  absl::Status Commit();

 private:
  explicit SqliteTransaction(SqliteDb* db) : db_(db) {}

  SqliteDb* db_;  // Null once committed or moved from.
};

}  // namespace entitysync::examples

#endif  // ENTITYSYNC_EXAMPLES_ITEMS_SQLITE_H_
