#include "examples/items/sqlite.h"

#include <sqlite3.h>

#include <utility>

#include "absl/strings/str_cat.h"

namespace entitysync::examples {
namespace {

absl::Status SqliteError(int code, sqlite3* db, absl::string_view what) {
  std::string message =
      absl::StrCat("sqlite ", what, ": ",
                   db != nullptr ? sqlite3_errmsg(db) : sqlite3_errstr(code));
  switch (code & 0xff) {  // The primary code; extended codes add high bits.
    case SQLITE_BUSY:
    case SQLITE_LOCKED:
      return absl::UnavailableError(message);
    default:
      return absl::InternalError(message);
  }
}

}  // namespace

SqliteStatement::SqliteStatement(SqliteStatement&& other) noexcept
    : db_(other.db_),
      stmt_(std::exchange(other.stmt_, nullptr)),
      bind_status_(std::move(other.bind_status_)) {}

SqliteStatement& SqliteStatement::operator=(SqliteStatement&& other) noexcept {
  if (this != &other) {
    sqlite3_finalize(stmt_);
    db_ = other.db_;
    stmt_ = std::exchange(other.stmt_, nullptr);
    bind_status_ = std::move(other.bind_status_);
  }
  return *this;
}

SqliteStatement::~SqliteStatement() { sqlite3_finalize(stmt_); }

void SqliteStatement::Bind(int index, absl::string_view value) {
  if (!bind_status_.ok()) return;
  int rc = sqlite3_bind_text64(stmt_, index, value.data(), value.size(),
                               SQLITE_TRANSIENT, SQLITE_UTF8);
  if (rc != SQLITE_OK) bind_status_ = SqliteError(rc, db_, "bind");
}

void SqliteStatement::Bind(int index, int64_t value) {
  if (!bind_status_.ok()) return;
  int rc = sqlite3_bind_int64(stmt_, index, value);
  if (rc != SQLITE_OK) bind_status_ = SqliteError(rc, db_, "bind");
}

absl::StatusOr<bool> SqliteStatement::Step() {
  if (!bind_status_.ok()) return bind_status_;
  int rc = sqlite3_step(stmt_);
  if (rc == SQLITE_ROW) return true;
  if (rc == SQLITE_DONE) return false;
  return SqliteError(rc, db_, "step");
}

absl::Status SqliteStatement::Run() {
  absl::StatusOr<bool> row = Step();
  if (!row.ok()) return row.status();
  return absl::OkStatus();
}

int64_t SqliteStatement::ColumnInt64(int index) const {
  return sqlite3_column_int64(stmt_, index);
}

std::string SqliteStatement::ColumnText(int index) const {
  // sqlite3_column_bytes must follow sqlite3_column_text (type conversion).
  const unsigned char* text = sqlite3_column_text(stmt_, index);
  int size = sqlite3_column_bytes(stmt_, index);
  if (text == nullptr) return std::string();
  return std::string(reinterpret_cast<const char*>(text), size);
}

bool SqliteStatement::ColumnIsNull(int index) const {
  return sqlite3_column_type(stmt_, index) == SQLITE_NULL;
}

absl::StatusOr<std::unique_ptr<SqliteDb>> SqliteDb::Open(
    const std::string& path, absl::Duration busy_timeout) {
  sqlite3* raw = nullptr;
  // NOMUTEX: the caller serializes; sqlite's own mutex would be redundant.
  int rc = sqlite3_open_v2(
      path.c_str(), &raw,
      SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX,
      nullptr);
  if (rc != SQLITE_OK) {
    absl::Status error = SqliteError(rc, raw, absl::StrCat("open ", path));
    sqlite3_close(raw);  // Allocated even on failure; null is a no-op.
    return error;
  }
  std::unique_ptr<SqliteDb> db(new SqliteDb(raw));
  sqlite3_extended_result_codes(raw, 1);
  sqlite3_busy_timeout(
      raw, static_cast<int>(absl::ToInt64Milliseconds(busy_timeout)));

  // journal_mode answers with a row holding the mode actually in effect; a
  // file system without shared memory support silently stays in "delete".
  absl::StatusOr<SqliteStatement> wal = db->Prepare("PRAGMA journal_mode=WAL");
  if (!wal.ok()) return wal.status();
  absl::StatusOr<bool> row = wal->Step();
  if (!row.ok()) return row.status();
  if (!*row || wal->ColumnText(0) != "wal") {
    return absl::FailedPreconditionError(
        absl::StrCat("sqlite: cannot enable WAL journaling on ", path));
  }
  // NORMAL is durable across process crashes in WAL mode, which is all an
  // example needs, and avoids an fsync per write.
  absl::Status sync = db->Exec("PRAGMA synchronous=NORMAL");
  if (!sync.ok()) return sync;
  return db;
}

SqliteDb::~SqliteDb() { sqlite3_close(db_); }

absl::Status SqliteDb::Exec(const char* sql) {
  int rc = sqlite3_exec(db_, sql, nullptr, nullptr, nullptr);
  if (rc != SQLITE_OK) return SqliteError(rc, db_, "exec");
  return absl::OkStatus();
}

absl::StatusOr<SqliteStatement> SqliteDb::Prepare(absl::string_view sql) {
  sqlite3_stmt* stmt = nullptr;
  int rc = sqlite3_prepare_v2(db_, sql.data(), static_cast<int>(sql.size()),
                              &stmt, nullptr);
  if (rc != SQLITE_OK) return SqliteError(rc, db_, "prepare");
  return SqliteStatement(db_, stmt);
}

absl::StatusOr<SqliteTransaction> SqliteTransaction::Begin(SqliteDb* db,
                                                           Mode mode) {
  absl::Status begun =
      db->Exec(mode == Mode::kWrite ? "BEGIN IMMEDIATE" : "BEGIN");
  if (!begun.ok()) return begun;
  return SqliteTransaction(db);
}

SqliteTransaction::SqliteTransaction(SqliteTransaction&& other) noexcept
    : db_(std::exchange(other.db_, nullptr)) {}

SqliteTransaction::~SqliteTransaction() {
  // Best effort: if ROLLBACK fails the connection closes or the next BEGIN
  // reports the problem.
  if (db_ != nullptr) db_->Exec("ROLLBACK").IgnoreError();
}

absl::Status SqliteTransaction::Commit() {
  absl::Status committed = db_->Exec("COMMIT");
  // A failed COMMIT (e.g. SQLITE_BUSY) leaves the transaction open; the
  // destructor then rolls it back.
  if (committed.ok()) db_ = nullptr;
  return committed;
}

}  // namespace entitysync::examples
