// The NATS Bus: the Bus between replicas, over core NATS (cnats).
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

#include <memory>
#include <string>
#include <vector>

#include "absl/time/time.h"
#include "adapters/bus/bus.h"

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
  // Flush every publish at once instead of letting cnats batch writes (see
  // ARCHITECTURE.md for the measured difference).
  bool send_asap = true;
};

// A NatsBus (see above). Start it with Bus::Start.
std::unique_ptr<Bus> NewNatsBus(NatsBusOptions options);

}  // namespace entitysync

#endif  // ENTITYSYNC_ADAPTERS_BUS_NATS_BUS_H_
