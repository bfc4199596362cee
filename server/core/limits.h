// Limits a replica enforces on untrusted input and on its own memory. Every
// limit has a default; all are set from flags in main.cc.
#ifndef ENTITYSYNC_SERVER_CORE_LIMITS_H_
#define ENTITYSYNC_SERVER_CORE_LIMITS_H_

#include <cstddef>
#include <cstdint>

#include "absl/time/time.h"

namespace entitysync {

struct Limits {
  size_t max_entity_bytes = 64;
  size_t max_id_bytes = 1024;
  size_t max_credentials_bytes = 4096;
  size_t max_content_type_bytes = 128;
  // Per stream.
  size_t max_subscriptions_per_stream = 1000;
  // Sustained subscribe/unsubscribe requests per second per stream, with a
  // burst of max_subscriptions_per_stream.
  double subscribe_rate_per_second = 200;
  size_t max_outbound_queue_bytes = 4 << 20;
  // Messages waiting for a stream leave in one write of up to this many
  // bytes (a lone larger message leaves alone). 0: one message per write.
  size_t max_write_batch_bytes = 64 << 10;
  // A write outstanding this long while more updates wait means the client
  // has stopped reading: the stream is closed.
  absl::Duration write_stall_timeout = absl::Seconds(10);
  size_t max_passthrough_bytes = 64 << 10;
  size_t max_passthrough_in_flight = 16;
  // Per replica.
  size_t max_streams = 100000;
  // New streams per second per replica (token bucket holding
  // new_stream_burst): a reconnect storm is spread out instead of taken at
  // once; refused streams get RESOURCE_EXHAUSTED and retry with backoff.
  // 0: no rate limit.
  double new_stream_rate_per_second = 2000;
  size_t new_stream_burst = 10000;
  // Long polls (EntitySync.Await) waiting at once; more get
  // RESOURCE_EXHAUSTED.
  size_t max_awaits = 10000;
  // An Await without timeout_ms waits this long; a longer one is cut to
  // await_max_timeout.
  absl::Duration await_default_timeout = absl::Seconds(30);
  absl::Duration await_max_timeout = absl::Minutes(5);
  // Per update (total row bytes of one key) and per Notify call.
  size_t max_row_bytes = 1 << 20;
  size_t max_notify_changes = 1000;
  // Largest inbound gRPC message.
  size_t max_request_bytes = 4 << 20;
};

}  // namespace entitysync

#endif  // ENTITYSYNC_SERVER_CORE_LIMITS_H_
