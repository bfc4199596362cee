// DeliveryQueue is one endpoint's delivery state, without any I/O: which
// update of which key to POST next, and what a response means for it.
//
//  - Conflation: per key only the newest pending update is kept (updates are
//    full state). At most max_pending_keys keys wait; an update of a further
//    key is refused (kOverflow) and the caller logs it.
//  - Order: one request in flight per key, at most max_in_flight in all.
//  - Version guard: a version at or below the last one delivered (or
//    discarded) for its key is never handed out, nor one at or below the
//    version in flight or pending.
//  - Retries: a failed delivery waits a jittered exponential backoff and is
//    retried with the newest pending update of its key (so a newer version
//    replaces an older one during the wait); after max_attempts attempts or
//    max_age since the first one it is given up.
//  - Bounded memory: a key's state is kept while something is pending, in
//    flight or backing off. Idle keys (only their delivered version left)
//    are remembered up to max_remembered_keys, the oldest idle ones
//    forgotten first. For a forgotten key the guard above no longer holds
//    by itself: the relay then relies on the server's per-subscription
//    ordering (a Subscribe stream never sends a key's versions backwards).
//
// The caller passes the current time, from a monotonic clock (wall clock
// jumps must not stretch or skip backoffs and max_age), so the queue is
// deterministic in tests.
// Thread-safe: the subscriber's thread offers, the I/O thread takes and
// completes.
#ifndef ENTITYSYNC_ADAPTERS_WEBHOOK_DELIVERY_QUEUE_H_
#define ENTITYSYNC_ADAPTERS_WEBHOOK_DELIVERY_QUEUE_H_

#include <cstddef>
#include <cstdint>
#include <deque>
#include <map>
#include <optional>
#include <string>
#include <utility>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/random/random.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "adapters/webhook/webhook_config.h"
#include "client/entity_key.h"
#include "entitysync/v1/entitysync.pb.h"

namespace entitysync {
namespace webhook {

struct DeliveryQueueOptions {
  size_t max_pending_keys = kDefaultMaxPendingKeys;
  size_t max_in_flight = kDefaultMaxInFlight;
  // Idle keys whose delivered version is remembered (see above).
  size_t max_remembered_keys = 100000;
  RetryOptions retry;
};

// One request to make.
struct Delivery {
  v1::Update update;
  // 1 for the first attempt of this key's current delivery.
  int attempt = 1;
};

class DeliveryQueue {
 public:
  enum class OfferResult {
    kQueued,     // new pending key
    kConflated,  // replaced an older pending update of the key
    kOutdated,   // not newer than what is delivered, in flight or pending
    kOverflow,   // max_pending_keys reached: dropped
  };

  struct Completion {
    enum class Kind {
      kDelivered,
      kDiscarded,  // the endpoint refused it for good; not retried
      kRetry,      // retried at retry_at
      kGaveUp,     // attempts or age exhausted; the update is dropped
    };
    Kind kind;
    absl::Time retry_at = absl::InfiniteFuture();
    int attempts = 0;
  };

  explicit DeliveryQueue(DeliveryQueueOptions options);

  OfferResult Offer(const v1::Update& update);

  // The next delivery to start at `now`, if any may start (a key ready,
  // fewer than max_in_flight in flight). Marks its key in flight.
  std::optional<Delivery> TakeReady(absl::Time now);

  // The outcome of a delivery handed out by TakeReady. `retry_after` (from
  // the response, may be zero) raises the backoff, capped at max_backoff.
  Completion Complete(const Delivery& delivery, ResponseClass outcome,
                      absl::Duration retry_after, absl::Time now);

  // When the earliest waiting retry is due; InfiniteFuture when none.
  absl::Time NextRetryAt() const;

  size_t in_flight() const;
  size_t pending_keys() const;
  // Keys with state kept: busy ones plus remembered idle ones.
  size_t tracked_keys() const;

 private:
  struct KeyState {
    // The newest update not yet handed out.
    std::optional<v1::Update> pending;
    bool has_delivered = false;
    uint64_t delivered_version = 0;
    bool in_flight = false;
    uint64_t in_flight_version = 0;
    // Waiting for a retry (in waiting_).
    bool backing_off = false;
    // The key's current delivery: attempts made, when the first was made.
    int attempts = 0;
    absl::Time first_attempt;
    // Bumped each time the key turns idle; matches its entry in idle_.
    uint64_t idle_seq = 0;
  };

  static std::string MapKey(const v1::EntityKey& key);
  // The version guard: whether `version` may still be delivered for a key.
  static bool IsNewer(const KeyState& state, uint64_t version);
  void PromoteDueLocked(absl::Time now) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void SetPendingLocked(KeyState& state, const v1::Update& update)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // The key is idle again: queue it if something is pending, else forget
  // what is not needed.
  void ReleaseLocked(const std::string& key, KeyState& state)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Remembers an idle key (nothing pending, in flight or backing off) and
  // forgets the oldest idle ones past max_remembered_keys.
  void RememberIdleLocked(const std::string& key, KeyState& state)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  absl::Duration BackoffLocked(int attempts) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  // Const after construction.
  const DeliveryQueueOptions options_;

  mutable absl::Mutex mu_;
  absl::flat_hash_map<std::string, KeyState> keys_ ABSL_GUARDED_BY(mu_);
  // Keys with a pending update, not in flight, not backing off. Entries may
  // be outdated (checked when taken).
  std::deque<std::string> ready_ ABSL_GUARDED_BY(mu_);
  std::multimap<absl::Time, std::string> waiting_ ABSL_GUARDED_BY(mu_);
  // Keys that turned idle, oldest first, with their idle_seq then. Entries
  // of keys busy again or idle again since are skipped when popped.
  std::deque<std::pair<std::string, uint64_t>> idle_ ABSL_GUARDED_BY(mu_);
  size_t pending_keys_ ABSL_GUARDED_BY(mu_) = 0;
  size_t in_flight_ ABSL_GUARDED_BY(mu_) = 0;
  absl::BitGen gen_ ABSL_GUARDED_BY(mu_);
};

}  // namespace webhook
}  // namespace entitysync

#endif  // ENTITYSYNC_ADAPTERS_WEBHOOK_DELIVERY_QUEUE_H_
