// Hub: the replica's registry of which local subscribers hold which key.
//
// Sharded by key so that subscribes on different keys do not contend. Each
// subscription records the credentials it was authorized with (needed for
// per_credentials resolves). When a key (or an entity's wildcard) gains its
// first subscriber the hub tells the InterestListener (the bus), and when it
// loses its last, it withdraws the interest; both happen under the shard lock
// so that interest changes for one key are never reordered.
//
// The hub holds shared_ptrs to subscribers: a session stays alive while it is
// registered. Lookups return copies, so callers deliver without any hub lock
// held. Thread-safe. The hub never calls back into the scheduler.
#ifndef ENTITYSYNC_SERVER_FANOUT_HUB_H_
#define ENTITYSYNC_SERVER_FANOUT_HUB_H_

#include <memory>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/synchronization/mutex.h"
#include "entitysync/v1/entitysync.pb.h"
#include "server/fanout/subscriber.h"

namespace entitysync {

class InterestListener {
 public:
  virtual ~InterestListener() = default;
  // id may be "*". Must not block and must not call into the hub.
  virtual void AddInterest(const std::string& entity,
                           const std::string& id) = 0;
  virtual void RemoveInterest(const std::string& entity,
                              const std::string& id) = 0;
};

struct SubscriberRef {
  std::shared_ptr<Subscriber> subscriber;
  // Credentials the subscription was authorized with, shared by all the
  // subscriptions of a stream (tokens are often hundreds of bytes: one copy
  // per stream, not per key). Never null in what the hub returns.
  std::shared_ptr<const std::string> credentials;
};

class Hub {
 public:
  // `listener` may be null; it must outlive the hub.
  explicit Hub(InterestListener* listener, int shard_count = 64);
  Hub(const Hub&) = delete;
  Hub& operator=(const Hub&) = delete;

  // Adds or refreshes (new credentials) the subscription. Returns true when
  // it was new.
  bool Add(const v1::EntityKey& key, std::shared_ptr<Subscriber> subscriber,
           std::shared_ptr<const std::string> credentials);
  bool Add(const v1::EntityKey& key, std::shared_ptr<Subscriber> subscriber,
           std::string credentials) {
    return Add(key, std::move(subscriber),
               std::make_shared<const std::string>(std::move(credentials)));
  }
  // Returns true when the subscription existed.
  bool Remove(const v1::EntityKey& key, const Subscriber* subscriber);

  // Subscribers of `key` itself and of its entity's wildcard, each once (a
  // subscriber holding both appears once, with the exact key's credentials).
  std::vector<SubscriberRef> Lookup(const v1::EntityKey& key) const;
  // Subscribers of `key` itself only (for a wildcard key: of the wildcard).
  std::vector<SubscriberRef> LookupExact(const v1::EntityKey& key) const;
  // True when Lookup would return anyone.
  bool HasSubscribers(const v1::EntityKey& key) const;
  // True when the key itself (not only its entity's wildcard) has a
  // subscriber.
  bool HasExactSubscribers(const v1::EntityKey& key) const;
  // Every key (wildcards included) with at least one subscriber.
  std::vector<v1::EntityKey> Keys() const;

  size_t key_count() const;
  size_t subscription_count() const;

  struct Counts {
    // The `top` most subscribed keys, most first.
    std::vector<std::pair<v1::EntityKey, size_t>> top_keys;
    absl::flat_hash_map<std::string, size_t> subscriptions_by_entity;
  };
  // Walks every shard (one at a time): for Admin.Stats, not a hot path.
  Counts CountSubscriptions(size_t top) const;

 private:
  // The subscribers of one key (the shard map's key string is the key).
  // Most keys have one: it is kept inline, and the map is allocated only
  // when a second subscriber comes.
  class Entry {
   public:
    // Adds or replaces; true when the subscriber is new to the key.
    bool Put(SubscriberRef ref);
    // True when the subscriber was there.
    bool Erase(const Subscriber* subscriber);
    size_t size() const;
    bool empty() const { return size() == 0; }
    void AppendTo(std::vector<SubscriberRef>* out) const;

   private:
    SubscriberRef one_;  // used while many_ is null
    std::unique_ptr<absl::flat_hash_map<const Subscriber*, SubscriberRef>>
        many_;
  };
  struct Shard {
    mutable absl::Mutex mu;
    absl::flat_hash_map<std::string, Entry> entries ABSL_GUARDED_BY(mu);
    size_t subscriptions ABSL_GUARDED_BY(mu) = 0;
  };

  Shard& ShardFor(const std::string& key_string) const;
  void CollectLocked(const Shard& shard, const std::string& key_string,
                     std::vector<SubscriberRef>* out) const
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(shard.mu);

  InterestListener* const listener_;
  std::vector<std::unique_ptr<Shard>> shards_;
};

}  // namespace entitysync

#endif  // ENTITYSYNC_SERVER_FANOUT_HUB_H_
