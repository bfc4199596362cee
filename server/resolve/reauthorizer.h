// Reauthorizer: re-checks every subscription's authorization on an interval
// (DESIGN rule 11), so that access revoked in the backend stops updates.
//
// Each sweep takes the hub's subscriptions of configured entities (exact
// keys and wildcards), groups them by entity and credentials, and asks the
// entity's resolver with reason REAUTHORIZE (up to max_batch_keys keys a
// call, at most `max_calls_in_flight` calls at once for the whole sweep).
// A key answered DENIED, or a call answered PERMISSION_DENIED or
// UNAUTHENTICATED (an expired or revoked token), revokes:
// the subscribers of that key holding those credentials get the `revoked`
// error (PERMISSION_DENIED) and lose the subscription, exactly as a
// per_credentials change-time denial does; no rows follow. Any other answer
// (FOUND, NOT_FOUND) keeps access, and so does a failed call (timeout,
// UNAVAILABLE): a resolver outage must not cut every client off; the next
// sweep asks again, and the failure is counted.
//
// A sweep still running when the next is due is not doubled: that tick is
// skipped. Thread-safe; callbacks run on gRPC threads and never block.
// Shutdown() must be called before destruction.
#ifndef ENTITYSYNC_SERVER_RESOLVE_REAUTHORIZER_H_
#define ENTITYSYNC_SERVER_RESOLVE_REAUTHORIZER_H_

#include <cstdint>
#include <deque>
#include <functional>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "entitysync/v1/resolver.pb.h"
#include "server/core/executor.h"
#include "server/fanout/hub.h"
#include "server/resolve/entity_table.h"

namespace entitysync {

struct ReauthorizerStats {
  uint64_t sweeps = 0;
  uint64_t calls = 0;
  uint64_t failed_calls = 0;
  // Subscriptions revoked.
  uint64_t revoked = 0;
};

class Reauthorizer {
 public:
  // Counts one resolver call (for Admin.Stats and /metrics).
  using RecordCall = std::function<void(const std::string& entity,
                                        absl::Time started, bool ok)>;

  // `interval` <= 0: never sweeps on its own (SweepNow still works).
  // `record` may be empty.
  Reauthorizer(const EntityTable* table, const Hub* hub, Executor* executor,
               absl::Duration interval, size_t max_calls_in_flight = 4,
               RecordCall record = nullptr);
  ~Reauthorizer();
  Reauthorizer(const Reauthorizer&) = delete;
  Reauthorizer& operator=(const Reauthorizer&) = delete;

  // Schedules the first sweep one interval from now.
  void Start();
  // Starts a sweep now unless one is running; false when one was.
  bool SweepNow();
  // No new calls or sweeps; waits (up to `timeout`) for calls in flight.
  void Shutdown(absl::Duration timeout);

  ReauthorizerStats stats() const;
  // True while a sweep walks the hub or has calls left to make or waiting.
  bool sweeping() const;

 private:
  // One Resolve call to make: keys of one entity, one credential.
  struct Batch {
    std::string entity;
    std::string credentials;
    std::vector<std::string> key_strings;
  };

  void ScheduleNext();
  // Takes the batches that may start now (counted in flight).
  std::vector<Batch> TakeLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Makes the calls; never called with mu_ held (a callback may run inline).
  void Issue(std::vector<Batch> batches);
  void OnAnswered(const Batch& batch,
                  absl::StatusOr<v1::ResolveResponse> response);
  // Sends `revoked` to the key's subscribers holding `credentials`.
  size_t Revoke(const std::string& key_string, const std::string& credentials);

  const EntityTable* const table_;
  const Hub* const hub_;
  Executor* const executor_;
  const absl::Duration interval_;
  const size_t max_calls_in_flight_;
  const RecordCall record_;

  mutable absl::Mutex mu_;
  std::deque<Batch> todo_ ABSL_GUARDED_BY(mu_);
  size_t in_flight_ ABSL_GUARDED_BY(mu_) = 0;
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  // A sweep is walking the hub (before its calls are queued).
  bool collecting_ ABSL_GUARDED_BY(mu_) = false;
  ReauthorizerStats stats_ ABSL_GUARDED_BY(mu_);
};

}  // namespace entitysync

#endif  // ENTITYSYNC_SERVER_RESOLVE_REAUTHORIZER_H_
