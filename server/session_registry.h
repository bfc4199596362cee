// SessionRegistry: the replica's live streams, for the stream limit and for
// closing every stream at shutdown. Holds weak references; sessions add and
// remove themselves. Thread-safe; Close is called with no registry lock held.
#ifndef ENTITYSYNC_SERVER_SESSION_REGISTRY_H_
#define ENTITYSYNC_SERVER_SESSION_REGISTRY_H_

#include <functional>
#include <memory>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/synchronization/mutex.h"
#include "grpcpp/support/status.h"

namespace entitysync {

class Session;

class SessionRegistry {
 public:
  explicit SessionRegistry(size_t max_streams) : max_streams_(max_streams) {}

  // False when the replica already serves max_streams streams.
  bool TryAdd(const std::shared_ptr<Session>& session);
  void Remove(const Session* session);
  // Closes every live stream with `status`.
  void CloseAll(const grpc::Status& status);
  size_t size() const;

 private:
  const size_t max_streams_;
  mutable absl::Mutex mu_;
  absl::flat_hash_map<const Session*, std::weak_ptr<Session>> sessions_
      ABSL_GUARDED_BY(mu_);
};

}  // namespace entitysync

#endif  // ENTITYSYNC_SERVER_SESSION_REGISTRY_H_
