// SessionRegistry: the replica's live streams, for the stream limit, for
// draining (no new streams, `goaway` to every session, wait until they are
// gone) and for closing every stream at shutdown. Holds weak references;
// sessions add and remove themselves. Thread-safe; sessions are called with no
// registry lock held. New streams are also rate limited here (a token
// bucket on a monotonic clock).
#ifndef ENTITYSYNC_SERVER_SESSION_SESSION_REGISTRY_H_
#define ENTITYSYNC_SERVER_SESSION_SESSION_REGISTRY_H_

#include <chrono>
#include <functional>
#include <memory>
#include <optional>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "grpcpp/support/status.h"

namespace entitysync {

class Session;

class SessionRegistry {
 public:
  // `new_stream_rate` streams per second with a burst of `new_stream_burst`;
  // a rate <= 0 means no rate limit.
  explicit SessionRegistry(size_t max_streams, double new_stream_rate = 0,
                           size_t new_stream_burst = 0);

  // OK, RESOURCE_EXHAUSTED at max_streams or over the new-stream rate,
  // UNAVAILABLE while draining, or CloseAll's status after it.
  grpc::Status TryAdd(const std::shared_ptr<Session>& session);
  void Remove(const Session* session);
  // Refuses new streams from now on and sends `goaway` to every live one.
  void StartDraining(absl::Duration reconnect_within);
  // Waits until no stream is left; false at the deadline.
  bool WaitUntilEmpty(absl::Time deadline);
  // Closes every live stream with `status` and refuses every later one
  // with it (a stream that arrives while the server shuts down).
  void CloseAll(const grpc::Status& status);
  size_t size() const;

 private:
  const size_t max_streams_;
  const double new_stream_rate_;
  const double new_stream_burst_;
  std::vector<std::shared_ptr<Session>> LiveSessions() const;

  mutable absl::Mutex mu_;
  absl::flat_hash_map<const Session*, std::weak_ptr<Session>> sessions_
      ABSL_GUARDED_BY(mu_);
  bool draining_ ABSL_GUARDED_BY(mu_) = false;
  // Set by CloseAll: every later TryAdd gets it.
  std::optional<grpc::Status> closed_ ABSL_GUARDED_BY(mu_);
  double rate_tokens_ ABSL_GUARDED_BY(mu_);
  std::chrono::steady_clock::time_point rate_refilled_ ABSL_GUARDED_BY(mu_);
};

}  // namespace entitysync

#endif  // ENTITYSYNC_SERVER_SESSION_SESSION_REGISTRY_H_
