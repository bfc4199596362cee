// ItemsResolver: the entitysync.v1.Resolver service for entity type
// "items", answering from an ItemsStore (see items_resolve.h for what each
// key resolves to).
//
// Ownership: the store is borrowed and must outlive the service; the
// service must outlive the grpc::Server it is registered with.
//
// Errors: a failed call carries the absl::Status of ResolveItems as a
// grpc::Status with the same code.
//
// Thread-safe. For tests it counts calls and resolved keys, and can hold
// every answer back for a fixed delay (without blocking a gRPC thread) to
// play a slow backend.
#ifndef ENTITYSYNC_EXAMPLES_ITEMS_ITEMS_RESOLVER_H_
#define ENTITYSYNC_EXAMPLES_ITEMS_ITEMS_RESOLVER_H_

#include <atomic>
#include <cstdint>

#include "absl/time/time.h"
#include "entitysync/v1/resolver.grpc.pb.h"
#include "examples/items/items_store.h"

namespace entitysync::examples {

class ItemsResolver final : public entitysync::v1::Resolver::CallbackService {
 public:
  struct Options {
    // The store is read first, then the answer waits this long: like a slow
    // network, the answer may be older than the data when it arrives.
    absl::Duration delay = absl::ZeroDuration();
  };

  ItemsResolver(ItemsStore* store, Options options)
      : store_(store), options_(options) {}
  explicit ItemsResolver(ItemsStore* store) : ItemsResolver(store, {}) {}

  grpc::ServerUnaryReactor* Resolve(
      grpc::CallbackServerContext* context,
      const entitysync::v1::ResolveRequest* request,
      entitysync::v1::ResolveResponse* response) override;

  // Resolve calls received, failed ones included.
  uint64_t calls() const { return calls_.load(std::memory_order_relaxed); }
  // Keys answered by successful calls.
  uint64_t keys_resolved() const {
    return keys_resolved_.load(std::memory_order_relaxed);
  }

 private:
  // Const after construction.
  ItemsStore* const store_;
  const Options options_;

  std::atomic<uint64_t> calls_{0};
  std::atomic<uint64_t> keys_resolved_{0};
};

}  // namespace entitysync::examples

#endif  // ENTITYSYNC_EXAMPLES_ITEMS_ITEMS_RESOLVER_H_
