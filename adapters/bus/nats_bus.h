// NatsBus: the Bus between replicas, over core NATS (cnats).
//
// Each key a replica has subscribers for is one NATS subscription on
// KeySubject(prefix, entity, id); an entity wildcard subscribes to
// "<prefix>.<entity>.*". So a replica receives only the notices it needs.
// Notices are the protobuf Notice (the raw key is the source of truth).
//
// Connection: never gives up. Start succeeds even when no server is up yet
// (RetryOnFailedConnect); state is kDisconnected until the first connect and
// during every outage. Publish fails with UNAVAILABLE while disconnected
// (cnats would buffer silently and could lose it). Every (re)connect and
// every slow-consumer drop calls on_resync, so the server re-resolves what it
// serves and no change made during an outage is lost.
//
// Threading: cnats delivers on a shared pool of threads
// (UseGlobalMessageDelivery) and runs connection callbacks on its own
// thread. Handlers are called from those threads and must not block (the
// server hands notices to its dispatcher). Publishes go out at once
// (SendAsap): latency over batching. All methods are thread-safe; no handler
// runs after Stop returns.
#ifndef ENTITYSYNC_ADAPTERS_BUS_NATS_BUS_H_
#define ENTITYSYNC_ADAPTERS_BUS_NATS_BUS_H_

#include <atomic>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "adapters/bus/bus.h"
#include "nats/nats.h"

namespace entitysync {

struct NatsBusOptions {
  // nats://host:port URLs of one cluster; tried in turn.
  std::vector<std::string> urls = {"nats://127.0.0.1:4222"};
  // Subjects are "<prefix>.<entity>.<token>"; replicas that must see each
  // other use the same prefix.
  std::string subject_prefix = "entitysync";
  // Shown by the NATS server for this connection.
  std::string connection_name = "entitysync";
  absl::Duration reconnect_wait = absl::Milliseconds(250);
  absl::Duration reconnect_jitter = absl::Milliseconds(250);
  absl::Duration connect_timeout = absl::Seconds(2);
  // A dead server (or a partition) is noticed after about
  // ping_interval * max_pings_out.
  absl::Duration ping_interval = absl::Seconds(2);
  int max_pings_out = 2;
  // Per subscription: past these, cnats drops messages and reports a slow
  // consumer, which triggers a resync.
  int pending_messages_limit = 65536;
  int pending_bytes_limit = 64 << 20;
};

class NatsBus : public Bus {
 public:
  explicit NatsBus(NatsBusOptions options);
  ~NatsBus() override;

  absl::Status Start(BusHandlers handlers) override;
  absl::Status Publish(const v1::Notice& notice) override;
  void AddInterest(const std::string& entity, const std::string& id) override;
  void RemoveInterest(const std::string& entity,
                      const std::string& id) override;
  BusState state() const override { return state_.load(); }
  void Stop() override;

 private:
  struct Interest {
    int refs = 0;
    // Null when the SUB could not be sent yet; retried on (re)connect.
    natsSubscription* subscription = nullptr;
  };

  static void OnMessage(natsConnection* nc, natsSubscription* sub, natsMsg* msg,
                        void* closure);
  static void OnConnected(natsConnection* nc, void* closure);
  static void OnDisconnected(natsConnection* nc, void* closure);
  static void OnClosed(natsConnection* nc, void* closure);
  static void OnError(natsConnection* nc, natsSubscription* sub, natsStatus err,
                      void* closure);

  void Connected();
  void SetState(BusState state);
  void Resync();
  void SubscribeLocked(const std::string& subject, Interest& interest)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(interest_mu_);
  void RetryMissingSubscriptions();

  const NatsBusOptions options_;
  std::atomic<BusState> state_{BusState::kDisconnected};
  // Set by Start, cleared and freed by Stop.
  std::atomic<natsConnection*> connection_{nullptr};

  // Held shared while a handler runs; Stop takes it exclusively.
  absl::Mutex handlers_mu_;
  BusHandlers handlers_ ABSL_GUARDED_BY(handlers_mu_);
  bool running_ ABSL_GUARDED_BY(handlers_mu_) = false;

  absl::Mutex interest_mu_;
  absl::flat_hash_map<std::string, Interest> interest_
      ABSL_GUARDED_BY(interest_mu_);

  absl::Mutex closed_mu_;
  bool closed_ ABSL_GUARDED_BY(closed_mu_) = false;
};

}  // namespace entitysync

#endif  // ENTITYSYNC_ADAPTERS_BUS_NATS_BUS_H_
