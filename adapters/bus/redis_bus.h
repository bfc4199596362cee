// The Redis Bus: the Bus between replicas, over Redis pub/sub (hiredis).
//
// Same routing as NatsBus: a key a replica has subscribers for is one
// SUBSCRIBE to the channel KeySubject(prefix, entity, id), and an entity
// wildcard is one PSUBSCRIBE to "<prefix>.<entity>.*" (with any glob
// character of the prefix or entity escaped; encoded ids never contain one),
// so a replica receives only the notices it needs. The payload is the
// protobuf Notice. A message is delivered only while its channel or pattern
// is still wanted and only when the notice's key maps to the channel it came
// on, so one prefix never hears another's notices.
//
// Connection: two connections to one Redis, one SUBSCRIBEd and one for
// PUBLISH (a subscribed Redis connection cannot publish). The bus is
// kConnected once both are up (AUTH, when a password is set, accepted) and
// Redis has confirmed every subscription; then on_resync is called, since
// Redis pub/sub is at-most-once and anything published meanwhile is lost.
// Any failure (error, EOF, no answer within command_timeout, including to
// the PINGs sent on idle connections) closes both connections, reports
// kDisconnected and reconnects forever, after reconnect_wait plus a random
// jitter, to the next address in turn. Start succeeds while Redis is down.
//
// Publish never blocks on the network: it queues the notice for the bus
// thread and fails with UNAVAILABLE while disconnected or when the bounded
// queue is full (Redis stalled), and with RESOURCE_EXHAUSTED above
// max_payload_bytes. A notice accepted with OK stays queued until Redis has
// answered its PUBLISH and is sent again after a reconnect if it had not
// (duplicates are harmless: notices only trigger resolves). Stop drops what
// is still queued.
//
// Threading: one bus thread runs both connections with poll() and calls
// every handler, which must not block (nor call Stop). All methods are
// thread-safe; no handler runs after Stop returns.
//
// Why hiredis' synchronous contexts in non-blocking mode and our own poll
// loop rather than its async API: hiredis 0.14's async API needs an event
// library adapter (libevent/libev, which nothing else here uses; ae is not
// shipped), and its pub/sub callback table is keyed by channel and updated
// when replies arrive, so the hub's quick unsubscribe/subscribe of one key can
// lose the callback. A blocking reader thread cannot be told to SUBSCRIBE
// while it waits (contexts are not thread-safe). One poll loop with an
// eventfd to wake it keeps all connection state on one thread, and the
// bus decides itself which messages are still wanted.
#ifndef ENTITYSYNC_ADAPTERS_BUS_REDIS_BUS_H_
#define ENTITYSYNC_ADAPTERS_BUS_REDIS_BUS_H_

#include <cstddef>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/time/time.h"
#include "adapters/bus/bus.h"

namespace entitysync {

struct RedisBusOptions {
  // "host:port", "[ipv6]:port" or "redis://host:port" of one Redis (or of
  // nodes that share pub/sub, e.g. one Redis Cluster); tried in turn. No
  // credentials in addresses: use `password`.
  std::vector<std::string> addresses = {"127.0.0.1:6379"};
  // Channels are "<prefix>.<entity>.<token>"; replicas that must see each
  // other use the same prefix.
  std::string channel_prefix = "entitysync";
  // Sent with AUTH when not empty. Never logged nor part of any error.
  std::string password;
  absl::Duration reconnect_wait = absl::Milliseconds(250);
  absl::Duration reconnect_jitter = absl::Milliseconds(250);
  // From the TCP connect until AUTH and every subscription are confirmed.
  absl::Duration connect_timeout = absl::Seconds(2);
  // A command unanswered this long (while nothing else arrives) means the
  // connection is dead.
  absl::Duration command_timeout = absl::Seconds(2);
  // Idle connections send a PING this often, so a dead Redis is noticed
  // within about ping_interval + command_timeout.
  absl::Duration ping_interval = absl::Seconds(2);
  // Notices queued or sent but not yet answered by Redis.
  size_t max_queued_publishes = 65536;
  size_t max_queued_bytes = 64 << 20;
  // Larger serialized notices are refused with RESOURCE_EXHAUSTED (the
  // server then publishes the notice without rows).
  size_t max_payload_bytes = 1 << 20;
  // Why connecting failed or a connection was lost: called on the bus thread
  // once per distinct reason per outage. Never contains the password.
  std::function<void(const std::string&)> on_error;
};

// A RedisBus (see above). Start it with Bus::Start; Start fails with
// INVALID_ARGUMENT for a malformed address.
std::unique_ptr<Bus> NewRedisBus(RedisBusOptions options);

}  // namespace entitysync

#endif  // ENTITYSYNC_ADAPTERS_BUS_REDIS_BUS_H_
