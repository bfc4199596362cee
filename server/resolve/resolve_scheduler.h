// ResolveScheduler: turns change notices into updates, with as few resolver
// calls as possible.
//
// Change-time resolves (OnNotice, ResyncAll):
//  - a key is resolved only when this replica has subscribers for it, at most
//    once per notice; notices that arrive while its resolve is in flight are
//    coalesced into one follow-up resolve;
//  - dirty keys of one entity are batched into one Resolve call (up to
//    max_batch_keys, at most max_concurrent_resolves calls in flight);
//  - per_credentials entities resolve once per distinct credential among the
//    local subscribers (a "unit" is a key plus, for those, a credential);
//  - failures (timeouts, UNAVAILABLE, missing results, rows over the limit)
//    send subscribers one `stale` signal and retry with exponential backoff
//    until the key resolves or loses its subscribers;
//  - versions come from the resolver, else the notice, else the replica's
//    clock; a version older than the last delivered one is dropped, and rows
//    equal to the last delivered ones are not sent again;
//  - a resolver answer older than the version a notice announced, or than
//    one it gave before, is lag (a behind read replica): treated as a
//    failure (stale, retry with backoff) until the resolver catches up, at
//    most kMaxLagRetries times in a row; then the answer is taken as it is
//    (notice versions on another clock, or versions that really went back,
//    must not freeze a key);
//  - each update is serialized once; deliveries of one unit are made by one
//    thread at a time, in order, with no lock held while touching sessions.
// Subscribe-time resolves (ResolveForSubscribe) pass the subscriber's
// credentials and return the snapshot to the caller. Requests waiting at the
// same time with the same entity and credentials share one Resolve call (up
// to max_batch_keys keys; subscribers of the same key share its result), at
// most max_concurrent_subscribe_resolves calls per entity in flight: a
// reconnect storm costs a few calls, not one per subscription. A request
// never joins a call already in flight (that call may have read the state
// before this subscriber was registered for changes).
//
// Notices with inline rows are pushed as they are (no resolver call) unless
// the entity is per_credentials.
//
// Thread-safe. Callbacks from resolver clients run on gRPC threads and never
// block. Shutdown() must be called before destruction; it waits for calls in
// flight.
#ifndef ENTITYSYNC_SERVER_RESOLVE_RESOLVE_SCHEDULER_H_
#define ENTITYSYNC_SERVER_RESOLVE_RESOLVE_SCHEDULER_H_

#include <atomic>
#include <cstdint>
#include <deque>
#include <functional>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "entitysync/v1/bus.pb.h"
#include "entitysync/v1/resolver.pb.h"
#include "server/core/executor.h"
#include "server/core/server_counters.h"
#include "server/core/version_clock.h"
#include "server/fanout/hub.h"
#include "server/resolve/entity_table.h"
#include "server/session/outbound_message.h"

namespace entitysync {

struct SchedulerOptions {
  size_t max_row_bytes = 1 << 20;
  absl::Duration retry_initial = absl::Milliseconds(100);
  absl::Duration retry_max = absl::Seconds(10);
  // Keys kept only for wildcard subscribers (for version ordering) are
  // dropped once the state table holds more keys than this.
  size_t max_idle_keys = 100000;
  // Where flushes (which start Resolve calls) run; empty: on the executor.
  // The server runs them on an I/O thread, which then also gets the
  // resolver's answer and starts the writes of its own streams: one thread
  // hand-off less per change. Must not run the task inline.
  std::function<void(std::function<void()>)> post_flush;
};

struct SchedulerStats {
  uint64_t resolve_calls = 0;
  uint64_t resolved_keys = 0;
  uint64_t resolve_failures = 0;
  uint64_t updates_published = 0;
  uint64_t unchanged_skipped = 0;
  uint64_t older_dropped = 0;
  uint64_t notices_without_subscribers = 0;
  // Subscribe-time Resolve calls, and the subscriptions they answered.
  uint64_t subscribe_calls = 0;
  uint64_t subscribe_requests = 0;
};

// Resolver calls of one entity (subscribe- and change-time) since start.
struct EntityCallStats {
  uint64_t calls = 0;
  uint64_t failures = 0;
  absl::Duration total_latency;
  absl::Duration max_latency;
  LatencyHistogram::Counts latency_buckets{};
};

// The outcome of a subscribe-time resolve, with its version decided.
struct Snapshot {
  v1::ResolvedKey::Status status = v1::ResolvedKey::FOUND;
  uint64_t version = 0;
  std::vector<v1::Row> rows;
};

class ResolveScheduler {
 public:
  using SnapshotCallback = std::function<void(absl::StatusOr<Snapshot>)>;

  ResolveScheduler(const EntityTable* table, const Hub* hub, Executor* executor,
                   VersionClock* clock, SchedulerOptions options);
  ~ResolveScheduler();
  ResolveScheduler(const ResolveScheduler&) = delete;
  ResolveScheduler& operator=(const ResolveScheduler&) = delete;

  // A change notice whose key has been validated. Never blocks.
  void OnNotice(const v1::Notice& notice);
  // Resolve every key with local subscribers again (bus reconnect, lost
  // notices).
  void ResyncAll();
  // The key lost its last local subscriber: forget its state.
  void Forget(const v1::EntityKey& key);

  // Authorizes `credentials` for `key` and returns its snapshot. `done` runs
  // on a gRPC thread; errors: UNAVAILABLE / DEADLINE_EXCEEDED (resolver),
  // RESOURCE_EXHAUSTED (rows over the limit), NOT_FOUND (unknown entity).
  void ResolveForSubscribe(const v1::EntityKey& key,
                           const std::string& credentials,
                           SnapshotCallback done);

  // Stops retries and new calls; waits (up to `timeout`) for calls in flight.
  void Shutdown(absl::Duration timeout);

  SchedulerStats stats() const;
  // Keys with resolve state (tests check that memory stays bounded).
  size_t tracked_keys() const;
  absl::flat_hash_map<std::string, EntityCallStats> call_stats() const;
  // Counts one resolver call of `entity` in call_stats() (also made by the
  // cluster_once resolver, so Admin.Stats and /metrics see every call).
  void RecordCall(const std::string& entity, absl::Time started, bool ok);

 private:
  // One pending delivery of a unit.
  struct Delivery {
    OutboundMessage msg;
  };

  enum class VersionSource { kNone, kResolver, kNotice, kClock };

  struct UnitState {
    v1::EntityKey key;
    std::string credentials;
    bool per_credentials = false;
    bool queued = false;
    bool in_flight = false;
    bool dirty = false;
    bool retry_scheduled = false;
    bool stale = false;
    // Answers in a row that were behind (see kMaxLagRetries).
    uint8_t lag_retries = 0;
    int failures = 0;
    // Highest version carried by notices since the last resolve was issued.
    uint64_t notice_version = 0;
    bool has_delivered = false;
    // Where the last delivered version came from.
    VersionSource version_source = VersionSource::kNone;
    uint64_t delivered_version = 0;
    uint64_t delivered_hash = 0;
    bool delivering = false;
    // At most one update (newer ones replace it) plus revocations and stale
    // signals: a vector, because an empty std::deque costs ~600 bytes and
    // every subscribed key has a UnitState.
    std::vector<Delivery> next;
  };

  struct KeyState {
    // By credentials ("" for shared entities).
    absl::flat_hash_map<std::string, UnitState> units;
  };

  // Subscribe-time requests of one entity and credentials, not yet issued.
  struct SubscribeGroup {
    std::vector<v1::EntityKey> keys;  // distinct, in arrival order
    absl::flat_hash_map<std::string, std::vector<SnapshotCallback>> waiters;
  };

  struct EntityState {
    std::deque<std::pair<std::string, std::string>> pending;  // key, creds
    int calls_in_flight = 0;
    bool flush_posted = false;
    // Subscribe-time: groups by credentials, served in arrival order.
    absl::flat_hash_map<std::string, SubscribeGroup> subscribe_groups;
    std::deque<std::string> subscribe_order;
    int subscribe_calls_in_flight = 0;
    bool subscribe_flush_posted = false;
  };

  // One issued subscribe-time call: its keys and who waits for each.
  struct SubscribeCall {
    std::string credentials;
    std::vector<std::pair<std::string, std::vector<SnapshotCallback>>> keys;
    v1::ResolveRequest request;
  };

  // What one resolve of one unit was issued with.
  struct IssuedUnit {
    std::string key_string;
    std::string credentials;
    v1::EntityKey key;
    uint64_t notice_version = 0;
    uint64_t clock_version = 0;
  };

  struct Outcome {
    enum class Kind { kResolved, kFailed, kDenied } kind = Kind::kFailed;
    v1::ResolvedKey result;
    std::string reason;
  };

  UnitState& UnitLocked(const v1::EntityKey& key, const std::string& key_string,
                        const std::string& credentials, bool per_credentials)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  UnitState* FindUnitLocked(const std::string& key_string,
                            const std::string& credentials)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void MarkDirtyLocked(UnitState& unit, const std::string& key_string)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Runs a flush where options_.post_flush says (default: the executor).
  void PostFlush(std::function<void()> flush);
  void PostFlushLocked(const std::string& entity)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void Flush(const std::string& entity);
  void FlushSubscribes(const std::string& entity);
  // Moves out every subscribe-time request not yet issued (shutdown).
  static void TakeSubscribeWaiters(EntityState& es,
                                   std::vector<SnapshotCallback>* out);
  void OnSubscribeResolved(const std::string& entity, SubscribeCall call,
                           absl::Time started,
                           absl::StatusOr<v1::ResolveResponse> response);
  void OnResolved(const std::string& entity, std::vector<IssuedUnit> batch,
                  absl::StatusOr<v1::ResolveResponse> response);
  void ApplyOutcomeLocked(
      const std::string& entity, const IssuedUnit& issued,
      const Outcome& outcome,
      std::vector<std::pair<std::string, std::string>>* drain)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Decides whether rows become an update for the unit; queues it.
  bool PublishLocked(UnitState& unit, uint64_t version, bool refresh,
                     const v1::ResolvedKey& result)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void QueueDeliveryLocked(UnitState& unit, OutboundMessage msg)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void ScheduleRetryLocked(UnitState& unit, const std::string& key_string)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void MaybeEraseLocked(const std::string& key_string)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // The distinct credentials to resolve `key` with: "" for shared entities,
  // each local subscriber's for per_credentials ones.
  std::vector<std::string> CredentialsFor(const v1::EntityKey& key,
                                          bool per_credentials) const;
  // Someone still subscribes with the unit's credentials (anyone, for
  // shared entities).
  bool HasSubscriberLocked(const UnitState& unit) const
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  uint64_t DeliveredVersion(const std::string& key_string,
                            const std::string& credentials);
  // Delivers the unit's queued messages until none is left; only one thread
  // drains a unit at a time.
  void Drain(const std::string& key_string, const std::string& credentials);
  void CallFinished();

  // Const after construction.
  const EntityTable* const table_;
  const Hub* const hub_;
  Executor* const executor_;
  VersionClock* const clock_;
  const SchedulerOptions options_;

  mutable absl::Mutex mu_;
  absl::flat_hash_map<std::string, KeyState> keys_ ABSL_GUARDED_BY(mu_);
  absl::flat_hash_map<std::string, EntityState> entities_ ABSL_GUARDED_BY(mu_);
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  int calls_in_flight_ ABSL_GUARDED_BY(mu_) = 0;
  SchedulerStats stats_ ABSL_GUARDED_BY(mu_);
  absl::flat_hash_map<std::string, EntityCallStats> call_stats_
      ABSL_GUARDED_BY(mu_);
};

// Total bytes of the rows' data.
size_t RowBytes(const google::protobuf::RepeatedPtrField<v1::Row>& rows);

}  // namespace entitysync

#endif  // ENTITYSYNC_SERVER_RESOLVE_RESOLVE_SCHEDULER_H_
