// Session: one client's Subscribe stream (a gRPC callback reactor).
//
// It owns the stream's state: credentials, subscriptions with the last
// version delivered for each, and the bounded OutboundQueue. It parses client
// messages, answers each request (subscribed / unsubscribed / error /
// passthrough_reply / authenticated) and writes updates handed to it by the
// scheduler. Every request is answered exactly once while the stream is open;
// a subscribe replaced before its snapshot by a later request for the same
// key is answered with a `superseded` ABORTED error.
//
// Lifetime: created as a shared_ptr that keeps itself alive until OnDone, so
// the hub and pending resolver callbacks may hold references; after OnDone
// they find it finished and drop what they deliver.
//
// Threading: reactions run on gRPC threads, Deliver on scheduler threads. All
// state is guarded by mu_; the stream (StartWrite, Finish, TryCancel) is
// touched with no lock held. One read and one write are in flight at most;
// Finish is called exactly once, never with a write outstanding. Lock order:
// Session::mu_ before hub shard locks; nothing calls into a session while
// holding a hub or scheduler lock.
#ifndef ENTITYSYNC_SERVER_SESSION_H_
#define ENTITYSYNC_SERVER_SESSION_H_

#include <memory>
#include <optional>
#include <string>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "entitysync/v1/entitysync.pb.h"
#include "grpcpp/server_context.h"
#include "grpcpp/support/byte_buffer.h"
#include "grpcpp/support/server_callback.h"
#include "server/entity_table.h"
#include "server/hub.h"
#include "server/limits.h"
#include "server/outbound_queue.h"
#include "server/resolve_scheduler.h"
#include "server/resolver_client.h"
#include "server/server_counters.h"
#include "server/session_registry.h"

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

class Session
    : public grpc::ServerBidiReactor<grpc::ByteBuffer, grpc::ByteBuffer>,
      public Subscriber,
      public std::enable_shared_from_this<Session> {
 public:
  // Returns the reactor for a new stream (one that finishes at once with
  // RESOURCE_EXHAUSTED when the replica is at its stream limit).
  static grpc::ServerBidiReactor<grpc::ByteBuffer, grpc::ByteBuffer>* Start(
      grpc::CallbackServerContext* context, const SessionDeps& deps);

  Session(grpc::CallbackServerContext* context, const SessionDeps& deps);
  ~Session() override;

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

  void OnReadDone(bool ok) override;
  void OnWriteDone(bool ok) override;
  void OnCancel() override;
  void OnDone() override;

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
  // Starts the next write, or Finish when closing; call with no lock held.
  void Pump();

  // Const after construction.
  grpc::CallbackServerContext* const context_;
  const SessionDeps deps_;

  // Kept until OnDone so the reactor outlives gRPC's use of it.
  std::shared_ptr<Session> self_;
  // Only the reaction thread touches the read buffer.
  grpc::ByteBuffer read_buffer_;
  // Only the thread that set write_in_flight_ touches it until OnWriteDone.
  grpc::ByteBuffer write_buffer_;

  absl::Mutex mu_;
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
  // TryCancel calls running without the lock; Finish waits for them (the
  // context is freed once the call is done).
  int stream_ops_ ABSL_GUARDED_BY(mu_) = 0;
  bool done_ ABSL_GUARDED_BY(mu_) = false;
  size_t passthrough_in_flight_ ABSL_GUARDED_BY(mu_) = 0;
  double rate_tokens_ ABSL_GUARDED_BY(mu_);
  absl::Time rate_refilled_ ABSL_GUARDED_BY(mu_);
};

}  // namespace entitysync

#endif  // ENTITYSYNC_SERVER_SESSION_H_
