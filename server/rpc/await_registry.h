// AwaitRegistry: the replica's pending long polls (EntitySync.Await), for the
// --max_awaits limit and for ending every one of them promptly when the
// replica drains or shuts down. Holds weak references; calls add and remove
// themselves. Thread-safe; no call is touched with the registry lock held.
#ifndef ENTITYSYNC_SERVER_RPC_AWAIT_REGISTRY_H_
#define ENTITYSYNC_SERVER_RPC_AWAIT_REGISTRY_H_

#include <cstddef>
#include <memory>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/synchronization/mutex.h"
#include "grpcpp/support/status.h"

namespace entitysync {

class AwaitCall;

class AwaitRegistry {
 public:
  explicit AwaitRegistry(size_t max_awaits) : max_awaits_(max_awaits) {}
  AwaitRegistry(const AwaitRegistry&) = delete;
  AwaitRegistry& operator=(const AwaitRegistry&) = delete;

  // OK; RESOURCE_EXHAUSTED at max_awaits; after StopAccepting, its status.
  grpc::Status TryAdd(const std::shared_ptr<AwaitCall>& call);
  void Remove(const AwaitCall* call);
  // Refuses new calls with `refusal` from now on and returns the live ones
  // (for the caller to close). Later calls keep the first refusal.
  std::vector<std::shared_ptr<AwaitCall>> StopAccepting(
      const grpc::Status& refusal);
  size_t size() const;

 private:
  const size_t max_awaits_;

  mutable absl::Mutex mu_;
  absl::flat_hash_map<const AwaitCall*, std::weak_ptr<AwaitCall>> calls_
      ABSL_GUARDED_BY(mu_);
  bool accepting_ ABSL_GUARDED_BY(mu_) = true;
  grpc::Status refusal_ ABSL_GUARDED_BY(mu_);
};

}  // namespace entitysync

#endif  // ENTITYSYNC_SERVER_RPC_AWAIT_REGISTRY_H_
