// Subscriber keeps a process in sync with entities served by entitysync. It
// holds one EntitySync.Subscribe stream, subscribes the keys it is asked to,
// and calls a per-key callback with every update (full state of the key).
//
//   SubscriberOptions options;
//   options.targets = {"10.0.0.1:7070", "10.0.0.2:7070"};
//   auto subscriber = Subscriber::Create(options);
//   if (!subscriber.ok()) ...;
//   (*subscriber)->Subscribe({"items", "100"}, [](const v1::Update& u) {...});
//
// Connection: the stream is kept forever. When it ends (or cannot be made)
// the subscriber waits a backoff delay (exponential, full jitter, reset once
// a stream is up) and connects to the next target of options.targets in
// turn. A `goaway` from a draining server makes it reconnect after a random
// delay of up to the server's reconnect_within_ms instead.
//
// Resync: after every reconnect each key still held is subscribed again with
// known_version = the last version delivered for it, so the server sends only
// what changed meanwhile.
//
// Ordering: per key a callback never sees a version that is not greater than
// the last one it saw. Such updates (duplicates, reordering across replicas,
// snapshots after a reconnect, `removed` ones alike) are dropped silently,
// except one at the same version right after a kStale event for the key: the
// server's refresh saying the rows are current again.
// Versions are tracked per concrete key, also inside wildcard subscriptions.
//
// Wildcards: a key with id "*" receives the updates of every id of its
// entity; each update carries its concrete key. When a concrete key and the
// wildcard of its entity are both subscribed, each callback gets the update.
// A wildcard remembers one version per id it has seen, and resubscribes with
// known_version 0 (the protocol has no per-id known versions).
//
// Errors: the server's `error` answer to a subscription with UNAVAILABLE is
// retried with backoff; any other code (PERMISSION_DENIED, INVALID_ARGUMENT,
// NOT_FOUND, ...) is final: the key is dropped and reported as a kError
// event with final = true. ALREADY_EXISTS counts as subscribed. An `error`
// the server sends on its own (no matching request id) about a held key is
// final too, except UNAVAILABLE, which is only reported. Connection failures
// are never final. Events are reported through options.on_event; the
// subscriber never logs.
//
// Threading: all public methods are thread-safe. Callbacks (updates and
// events) run on the subscriber's own thread, one at a time, with no internal
// lock held, so they may call Subscribe and Unsubscribe. They must not block
// for long (that delays every other key) and must not destroy the
// Subscriber.
#ifndef ENTITYSYNC_CLIENT_SUBSCRIBER_H_
#define ENTITYSYNC_CLIENT_SUBSCRIBER_H_

#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/random/random.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "client/backoff.h"
#include "client/entity_key.h"
#include "client/subscribe_stream.h"
#include "client/subscriber_event.h"
#include "entitysync/v1/entitysync.pb.h"
#include "grpcpp/channel.h"
#include "grpcpp/security/credentials.h"

namespace entitysync {
namespace client {

struct SubscriberOptions {
  // host:port of the servers (or load balancers), tried in turn; not empty.
  std::vector<std::string> targets;
  // Sent as the `authorization` metadata of every stream when not empty.
  std::string credentials;
  // Reconnect and retry delays: exponential from initial to max, each drawn
  // uniformly from [0, current ceiling].
  absl::Duration backoff_initial = absl::Milliseconds(100);
  absl::Duration backoff_max = absl::Seconds(10);
  // A stream that is not up after this long (no initial metadata, no
  // message, channel not READY) is abandoned for the next target; guards
  // against black-holed addresses.
  absl::Duration connect_timeout = absl::Seconds(10);
  // Pings on an established stream, so that a connection that silently
  // stops carrying anything (a black hole: a host gone without a reset, a
  // NAT that forgot the flow) is noticed and replaced: a ping unanswered
  // for keepalive_timeout ends the stream, and the subscriber reconnects
  // and resubscribes. Servers accept a ping every 10 s by default
  // (--min_client_ping_interval); keep keepalive_time above theirs.
  absl::Duration keepalive_time = absl::Seconds(30);
  absl::Duration keepalive_timeout = absl::Seconds(10);
  // Largest server message accepted; updates carry whole rows.
  int max_message_bytes = 16 << 20;
  // TLS or other channel credentials; nullptr means insecure (plaintext).
  std::shared_ptr<grpc::ChannelCredentials> channel_credentials;
  // Receives everything that is not an update. Optional.
  std::function<void(const SubscriberEvent&)> on_event;
};

class Subscriber {
 public:
  using UpdateCallback = std::function<void(const v1::Update&)>;

  // Starts a subscriber and its thread; it connects right away.
  // INVALID_ARGUMENT when the options are unusable (no targets, bad
  // durations).
  static absl::StatusOr<std::unique_ptr<Subscriber>> Create(
      SubscriberOptions options);

  Subscriber(const Subscriber&) = delete;
  Subscriber& operator=(const Subscriber&) = delete;

  // Cancels the stream and joins the subscriber's thread. Returns promptly
  // unless a callback is running, which it waits for. No callback runs after
  // it returns. Must not be called from a callback, nor from a gRPC
  // callback-API reaction.
  ~Subscriber();

  // Subscribes `key` (id "*" for every id of the entity) and calls
  // `on_update` with its updates, starting with the snapshot. Works while
  // disconnected: the key is sent once a stream is up. INVALID_ARGUMENT for
  // an empty entity or id or a null callback; ALREADY_EXISTS when the key is
  // already subscribed (unsubscribe first to replace the callback).
  absl::Status Subscribe(const EntityKey& key, UpdateCallback on_update);

  // Unsubscribes `key`. When it returns, the callback of `key` is not running
  // (unless Unsubscribe was called from a callback) and will never be called
  // again, even for updates already received; so it may wait for a running
  // callback and must not be called while holding a lock that callback
  // takes. NOT_FOUND when `key` is not subscribed (never was, or dropped
  // after a final error).
  absl::Status Unsubscribe(const EntityKey& key);

  // Whether a stream is up now.
  bool IsConnected() const;

  // Waits until a stream is up; false on timeout.
  bool WaitForConnected(absl::Duration timeout) const;

 private:
  enum class SubscriptionState {
    kUnsent,     // to be sent on the current (or next) stream
    kSent,       // sent, no answer yet
    kLive,       // the server answered `subscribed`
    kRetryWait,  // the server answered UNAVAILABLE; resent at retry_at
  };

  struct Subscription {
    Subscription(uint64_t id, UpdateCallback on_update,
                 const SubscriberOptions& options)
        : id(id),
          on_update(
              std::make_shared<const UpdateCallback>(std::move(on_update))),
          retry_backoff(options.backoff_initial, options.backoff_max) {}

    // Tells a subscription apart from an earlier one of the same key.
    uint64_t id;
    // Shared so the callback can run after the lock is released even if the
    // subscription is erased meanwhile.
    std::shared_ptr<const UpdateCallback> on_update;
    SubscriptionState state = SubscriptionState::kUnsent;
    absl::Time retry_at = absl::InfiniteFuture();
    Backoff retry_backoff;
    // Last delivered version per concrete id (one entry unless wildcard).
    absl::flat_hash_map<std::string, uint64_t> delivered;
    // Ids reported stale and not refreshed since: the server's refresh at
    // the same version is delivered for them.
    absl::flat_hash_set<std::string> stale;
  };

  // A request sent on the current stream, awaiting its answer.
  struct PendingRequest {
    EntityKey key;
    uint64_t subscription_id;
    bool is_subscribe;
  };

  // What the thread does next, taken under mu_ and done without it.
  struct Work {
    bool start_stream = false;
    std::shared_ptr<SubscribeStream> stream;
    std::shared_ptr<grpc::Channel> channel;
    std::vector<v1::SubscribeRequest> writes;
    bool cancel_stream = false;
    bool check_connect = false;
    bool has_event = false;
    uint64_t event_generation = 0;
    StreamEvent event;
  };

  explicit Subscriber(SubscriberOptions options);

  // The subscriber's thread.
  void Run();
  void Shutdown();

  bool HasWorkLocked() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  absl::Time NextTimerLocked() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  Work TakeWorkLocked(absl::Time now) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void QueueSubscribesLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void EraseSubscriptionLocked(const EntityKey& key)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // The subscription a `subscribed` or `error` answer is about: by request
  // id, else (for answers the server sends on its own) by key.
  Subscription* FindAnsweredLocked(uint64_t request_id,
                                   const v1::EntityKey& key,
                                   EntityKey* answered_key, bool* by_request)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void MarkUnsentLocked(const EntityKey& key, Subscription& sub)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  // Called on gRPC threads by the stream.
  void OnStreamEvent(uint64_t generation, StreamEvent event);

  // Called on the subscriber's thread without mu_.
  void DoWork(Work work);
  void StartStream();
  void CheckConnect(const std::shared_ptr<SubscribeStream>& stream,
                    const std::shared_ptr<grpc::Channel>& channel);
  void HandleStreamEvent(uint64_t generation, StreamEvent event);
  void HandleConnected();
  void HandleDisconnected(const grpc::Status& status);
  void HandleMessage(const v1::SubscribeResponse& message);
  void HandleSubscribed(const v1::Subscribed& subscribed);
  void HandleUpdate(const v1::Update& update);
  void Deliver(const EntityKey& subscription_key, const std::string& id,
               const v1::Update& update);
  void HandleStale(const v1::Stale& stale);
  void HandleError(const v1::Error& error);
  void HandleGoAway(const v1::GoAway& goaway);
  void Emit(const SubscriberEvent& event) const;

  // Const after construction.
  const SubscriberOptions options_;

  // Used only by the subscriber's thread.
  absl::BitGen gen_;
  Backoff reconnect_backoff_;

  mutable absl::Mutex mu_;
  bool stop_ ABSL_GUARDED_BY(mu_) = false;
  absl::flat_hash_map<EntityKey, Subscription> subscriptions_
      ABSL_GUARDED_BY(mu_);
  uint64_t next_subscription_id_ ABSL_GUARDED_BY(mu_) = 1;
  // Id of the subscription whose callback is running, 0 when none.
  uint64_t running_subscription_ ABSL_GUARDED_BY(mu_) = 0;
  // Keys that became kUnsent, in order; entries whose subscription is gone
  // or no longer kUnsent are skipped.
  std::vector<EntityKey> to_send_ ABSL_GUARDED_BY(mu_);
  // How many subscriptions are kRetryWait.
  int retry_waiting_ ABSL_GUARDED_BY(mu_) = 0;

  // The current stream and its channel, from StartStream until its kDone is
  // handled. The channel is released on the subscriber's thread only (see
  // subscribe_stream.h).
  std::shared_ptr<SubscribeStream> stream_ ABSL_GUARDED_BY(mu_);
  std::shared_ptr<grpc::Channel> channel_ ABSL_GUARDED_BY(mu_);
  uint64_t stream_generation_ ABSL_GUARDED_BY(mu_) = 0;
  // Streams whose kDone has not been received; the destructor waits for 0
  // because their sinks point at this object.
  int live_streams_ ABSL_GUARDED_BY(mu_) = 0;
  bool connected_ ABSL_GUARDED_BY(mu_) = false;
  size_t target_index_ ABSL_GUARDED_BY(mu_) = 0;
  std::deque<std::pair<uint64_t, StreamEvent>> inbox_ ABSL_GUARDED_BY(mu_);
  std::vector<v1::SubscribeRequest> outbox_ ABSL_GUARDED_BY(mu_);
  uint64_t next_request_id_ ABSL_GUARDED_BY(mu_) = 1;
  absl::flat_hash_map<uint64_t, PendingRequest> pending_ ABSL_GUARDED_BY(mu_);

  // Timers, absl::InfiniteFuture() when unset.
  absl::Time reconnect_at_ ABSL_GUARDED_BY(mu_) = absl::InfinitePast();
  absl::Time connect_check_at_ ABSL_GUARDED_BY(mu_) = absl::InfiniteFuture();
  absl::Time goaway_at_ ABSL_GUARDED_BY(mu_) = absl::InfiniteFuture();
  bool goaway_cancel_sent_ ABSL_GUARDED_BY(mu_) = false;
  // Why we cancelled the current stream, reported instead of CANCELLED.
  absl::Status cancel_reason_ ABSL_GUARDED_BY(mu_);

  std::thread thread_;
};

}  // namespace client
}  // namespace entitysync

#endif  // ENTITYSYNC_CLIENT_SUBSCRIBER_H_
