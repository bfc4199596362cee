// ClusterOnceResolver: the cluster_once resolve mode (DESIGN.md, "Resolve
// modes"). The replica that accepts a Notify resolves the changed keys of
// cluster_once entities itself, once, and the notices it then publishes carry
// the rows and the resolver's version. Replicas with subscribers push those
// rows as they are (inline rows, no resolver call), so resolver calls per
// change no longer grow with the number of replicas.
//
//  - Notify waits for the resolve, then publishes: OK still means published.
//  - Coalescing: a key whose resolve is in flight is not resolved twice at
//    once; later notices for it wait for one follow-up resolve (the one in
//    flight may have read the state before their change).
//  - Keys of one call are batched per entity (max_batch_keys).
//  - Anything it cannot turn into versioned rows (resolver error or timeout,
//    no version, DENIED, rows over the limit) is passed on as the plain
//    notice it was, so each replica with subscribers resolves it itself, with
//    its usual stale signal and retries. Nothing is lost, only the saving.
//
// Thread-safe. Callbacks run on resolver-client threads and never block.
#ifndef ENTITYSYNC_SERVER_RESOLVE_CLUSTER_ONCE_RESOLVER_H_
#define ENTITYSYNC_SERVER_RESOLVE_CLUSTER_ONCE_RESOLVER_H_

#include <cstddef>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "entitysync/v1/bus.pb.h"
#include "entitysync/v1/resolver.pb.h"
#include "server/resolve/entity_table.h"

namespace entitysync {

class ClusterOnceResolver {
 public:
  using Done = std::function<void(std::vector<v1::Notice>)>;
  // Called once per resolver call, with its outcome (call statistics).
  using RecordCall =
      std::function<void(const std::string& entity, absl::Time, bool ok)>;

  // `max_row_bytes` applies to entities without their own limit.
  ClusterOnceResolver(const EntityTable* table, size_t max_row_bytes,
                      RecordCall record);
  ~ClusterOnceResolver();
  ClusterOnceResolver(const ClusterOnceResolver&) = delete;
  ClusterOnceResolver& operator=(const ClusterOnceResolver&) = delete;

  // True when notices of `entity` go through Resolve.
  static bool Applies(const EntityRoute* route);

  // Fills in rows and version of `notices` (keys of cluster_once entities,
  // without rows) and calls `done` exactly once with them, in the same
  // order: on a resolver-client thread, or inline after Shutdown.
  void Resolve(std::vector<v1::Notice> notices, Done done);

  // Completes every waiting call with its notices as they were, and waits
  // (up to `timeout`) for resolver calls in flight to return.
  void Shutdown(absl::Duration timeout);

  // Resolver calls made; keys answered with versioned rows; keys passed on
  // as plain notices.
  struct Stats {
    uint64_t calls = 0;
    uint64_t resolved = 0;
    uint64_t passed_on = 0;
  };
  Stats stats() const;

 private:
  // One Resolve() call: its notices, how many are still being resolved.
  struct Request {
    absl::Mutex mu;
    std::vector<v1::Notice> notices ABSL_GUARDED_BY(mu);
    size_t remaining ABSL_GUARDED_BY(mu) = 0;
    Done done;
  };
  struct Waiter {
    std::shared_ptr<Request> request;
    size_t index = 0;
  };
  // A key with a resolve in flight: who waits for it (`current`) and who
  // waits for the follow-up (`next`).
  struct KeyState {
    v1::EntityKey key;
    std::vector<Waiter> current;
    std::vector<Waiter> next;
  };

  void Issue(const std::string& entity, std::vector<std::string> key_strings);
  void OnResolved(const std::string& entity,
                  const std::vector<std::string>& key_strings,
                  absl::StatusOr<v1::ResolveResponse> response);
  // Sets the waiter's notice from `result` (nullptr: pass it on as it was)
  // and finishes its request when it was the last one.
  void Complete(const Waiter& waiter, const v1::ResolvedKey* result,
                size_t max_row_bytes);

  const EntityTable* const table_;
  const size_t max_row_bytes_;
  const RecordCall record_;

  mutable absl::Mutex mu_;
  absl::flat_hash_map<std::string, KeyState> in_flight_ ABSL_GUARDED_BY(mu_);
  int calls_in_flight_ ABSL_GUARDED_BY(mu_) = 0;
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  Stats stats_ ABSL_GUARDED_BY(mu_);
};

}  // namespace entitysync

#endif  // ENTITYSYNC_SERVER_RESOLVE_CLUSTER_ONCE_RESOLVER_H_
