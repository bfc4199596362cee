// Session: one client's subscription stream, whatever carries it (the
// session core; a transport feeds it requests and writes what it hands out).
//
// It owns the stream's state: credentials, subscriptions with the last
// version delivered for each, and the bounded OutboundQueue. It answers each
// request (subscribed / unsubscribed / error / passthrough_reply /
// authenticated) and queues updates handed to it by the scheduler. Every
// request is answered exactly once while the stream is open; a subscribe
// replaced before its snapshot by a later request for the same key is
// answered with a `superseded` ABORTED error.
//
// Lifetime: a shared_ptr; its transport holds it until OnDone, and the hub
// and pending resolver callbacks may hold it longer; after OnDone they find
// it finished and drop what they deliver.
//
// Threading: the transport calls OnRequest, OnWriteDone, OnCancel and OnDone
// on its executor (SessionExecutor), and the session calls the transport
// (Write, Finish, CancelWrite) only there, with no lock held. Deliver, GoAway,
// Close and resolver callbacks run on any thread: they queue under mu_ and
// wake the executor (one posted task at a time per session). One write is in
// flight at most, carrying what waits up to the limits'
// max_write_batch_bytes; Finish is called exactly once, never with a write
// outstanding. Lock order: Session::mu_ before hub shard locks; nothing
// calls into a session while holding a hub or scheduler lock.
#ifndef ENTITYSYNC_SERVER_SESSION_SESSION_H_
#define ENTITYSYNC_SERVER_SESSION_SESSION_H_

#include <memory>
#include <optional>
#include <string>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "entitysync/v1/entitysync.pb.h"
#include "grpcpp/support/status.h"
#include "server/core/limits.h"
#include "server/core/server_counters.h"
#include "server/fanout/hub.h"
#include "server/resolve/entity_table.h"
#include "server/resolve/resolve_scheduler.h"
#include "server/resolve/resolver_client.h"
#include "server/session/outbound_queue.h"
#include "server/session/session_registry.h"
#include "server/session/session_transport.h"

namespace entitysync {

// What every session shares; owned by the server, outlives all sessions.
struct SessionDeps {
  const Limits* limits = nullptr;
  const EntityTable* table = nullptr;
  Hub* hub = nullptr;
  ResolveScheduler* scheduler = nullptr;
  SessionRegistry* registry = nullptr;
  PassthroughClient* passthrough = nullptr;  // null: not configured
  ServerCounters* counters = nullptr;        // null: not counted
};

class Session : public Subscriber,
                public std::enable_shared_from_this<Session> {
 public:
  // A new stream with `credentials` (the transport's `authorization`), or
  // the error that refuses it: credentials over the limit (checked before
  // the stream counts, so no resolver ever receives more), the stream limit,
  // the new-stream rate, or draining.
  // `executor` is shared: a transport's executor may live only as long as
  // the sessions that run on it (a WebSocket's strand).
  static absl::StatusOr<std::shared_ptr<Session>> Open(
      const SessionDeps& deps, std::shared_ptr<SessionExecutor> executor,
      SessionTransport* transport, std::string credentials);

  Session(const SessionDeps& deps, std::shared_ptr<SessionExecutor> executor,
          SessionTransport* transport, std::string credentials);
  ~Session() override;

  // From the transport, on the executor.
  void OnRequest(const v1::SubscribeRequest& request);
  // A message that is not a SubscribeRequest.
  void OnMalformedRequest();
  void OnWriteDone(bool ok);
  // The client went away or the stream was cancelled.
  void OnCancel();
  // The stream is over; the transport is not called again.
  void OnDone();
  // No more requests are read once the session closes.
  bool closing() const ABSL_LOCKS_EXCLUDED(mu_);

  // From any thread.
  void Deliver(const OutboundMessage& msg) override;
  // Tells the client to reconnect elsewhere within `reconnect_within`
  // (draining); the stream stays open until the client goes.
  void GoAway(absl::Duration reconnect_within);
  // Ends the stream with `status` after the write in flight; with
  // `cancel_write`, cancels that write (a client that stopped reading).
  void Close(const grpc::Status& status, bool cancel_write);

 private:
  // Deliveries held back while a subscription waits for its subscribe-time
  // resolve (authorization + snapshot): the newest per key (one key, or
  // every id of a wildcard's entity), released after the snapshot.
  struct Held {
    absl::flat_hash_map<std::string, OutboundMessage> messages;
    size_t bytes = 0;
  };
  // One per subscribed key, so kept small (the key is the map's key string;
  // KeyOfKeyString gives the EntityKey back).
  struct Subscription {
    bool pending = true;
    uint64_t generation = 0;
    // The subscribe request that is answered once the snapshot is in.
    uint64_t request_id = 0;
    uint64_t last_version = 0;
    std::unique_ptr<Held> held;  // only while pending and something arrived
  };

  void HandleRequest(const v1::SubscribeRequest& request);
  void HandleSubscribe(uint64_t request_id, const v1::Subscribe& subscribe);
  void HandleUnsubscribe(uint64_t request_id,
                         const v1::Unsubscribe& unsubscribe);
  void HandleAuthenticate(uint64_t request_id,
                          const v1::Authenticate& authenticate);
  void HandlePassthrough(uint64_t request_id,
                         const v1::Passthrough& passthrough);
  void OnSnapshot(const std::string& key_string, uint64_t generation,
                  uint64_t request_id, const v1::Subscribe& subscribe,
                  absl::StatusOr<Snapshot> snapshot);
  // Unregisters the key from the hub while mu_ is held, so that a
  // concurrent re-subscribe cannot be unregistered by a stale release.
  void RemoveFromHubLocked(const v1::EntityKey& key)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // After RemoveFromHubLocked, with no lock held: lets the scheduler drop
  // the key's state when nobody else holds it.
  void ForgetIfUnused(const v1::EntityKey& key);
  void HoldLocked(Subscription& sub, const OutboundMessage& msg)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  // Answers the subscribe request that `sub` still waits on: a later
  // request (`request_kind` `request_id`) for the same key replaced it.
  void PushSupersededLocked(const Subscription& sub, uint64_t request_id,
                            absl::string_view request_kind,
                            const v1::EntityKey& key)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  bool TakeRateToken() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void PushLocked(OutboundMessage msg) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void PushErrorLocked(uint64_t request_id, const absl::Status& status,
                       const v1::EntityKey* key)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void CloseLocked(const grpc::Status& status, bool cancel_write)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // CloseLocked for a client that does not keep up, counted as such.
  void CloseSlowLocked(const grpc::Status& status, bool cancel_write)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Starts the next write, or Finish when closing: on the executor, with no
  // lock held.
  void Pump();
  // Pump now when on the executor, else once soon (one task at a time).
  void Wake();

  // Const after construction.
  const SessionDeps deps_;
  const std::shared_ptr<SessionExecutor> executor_;

  mutable absl::Mutex mu_;
  // Null after OnDone. Set and cleared on the executor; called only there.
  SessionTransport* transport_ ABSL_GUARDED_BY(mu_);
  // A Pump task is posted to the executor and has not run yet.
  bool wake_posted_ ABSL_GUARDED_BY(mu_) = false;
  // Shared with the hub's entries for this stream's subscriptions; replaced
  // (never mutated) when the client authenticates again.
  std::shared_ptr<const std::string> credentials_ ABSL_GUARDED_BY(mu_);
  absl::flat_hash_map<std::string, Subscription> subscriptions_
      ABSL_GUARDED_BY(mu_);
  uint64_t next_generation_ ABSL_GUARDED_BY(mu_) = 0;
  OutboundQueue queue_ ABSL_GUARDED_BY(mu_);
  bool write_in_flight_ ABSL_GUARDED_BY(mu_) = false;
  absl::Time write_started_ ABSL_GUARDED_BY(mu_);
  bool closing_ ABSL_GUARDED_BY(mu_) = false;
  grpc::Status close_status_ ABSL_GUARDED_BY(mu_);
  bool cancel_requested_ ABSL_GUARDED_BY(mu_) = false;
  bool finish_called_ ABSL_GUARDED_BY(mu_) = false;
  bool done_ ABSL_GUARDED_BY(mu_) = false;
  size_t passthrough_in_flight_ ABSL_GUARDED_BY(mu_) = 0;
  double rate_tokens_ ABSL_GUARDED_BY(mu_);
  absl::Time rate_refilled_ ABSL_GUARDED_BY(mu_);
};

}  // namespace entitysync

#endif  // ENTITYSYNC_SERVER_SESSION_SESSION_H_
