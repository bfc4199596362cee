// Event counts the server's parts bump as things happen, and a latency
// histogram, for the Prometheus endpoint (server/metrics.h). Lock-free:
// relaxed atomics, a few nanoseconds per event. Thread-safe.
#ifndef ENTITYSYNC_SERVER_CORE_SERVER_COUNTERS_H_
#define ENTITYSYNC_SERVER_CORE_SERVER_COUNTERS_H_

#include <array>
#include <atomic>
#include <cstddef>
#include <cstdint>

#include "absl/time/time.h"

namespace entitysync {

// Latencies in Prometheus' bucket layout (upper bounds in seconds).
class LatencyHistogram {
 public:
  static constexpr std::array<double, 14> kBounds = {
      0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05,
      0.1,    0.25,  0.5,    1,     2.5,  5,     10};
  // Per bucket (the last is +Inf), not cumulative.
  using Counts = std::array<uint64_t, kBounds.size() + 1>;

  // The bucket `latency` falls in.
  static size_t Bucket(absl::Duration latency);

  void Record(absl::Duration latency);
  Counts counts() const;
  double sum_seconds() const;

 private:
  std::array<std::atomic<uint64_t>, kBounds.size() + 1> counts_{};
  std::atomic<uint64_t> sum_nanos_{0};
};

struct ServerCounters {
  std::atomic<uint64_t> notices_published{0};  // Notify -> bus
  std::atomic<uint64_t> notices_received{0};   // bus -> this replica
  // Update messages handed to a stream's write.
  std::atomic<uint64_t> updates_delivered{0};
  // Pending updates replaced in a stream's queue by a newer one of the key.
  std::atomic<uint64_t> updates_conflated{0};
  // Pending messages discarded when a slow stream was closed.
  std::atomic<uint64_t> updates_dropped{0};
  // Streams closed with RESOURCE_EXHAUSTED for not reading.
  std::atomic<uint64_t> slow_consumer_disconnects{0};
  // Bus connections regained after a loss.
  std::atomic<uint64_t> bus_reconnects{0};
  LatencyHistogram notify_latency;
};

inline void Bump(std::atomic<uint64_t>& counter, uint64_t n = 1) {
  counter.fetch_add(n, std::memory_order_relaxed);
}

}  // namespace entitysync

#endif  // ENTITYSYNC_SERVER_CORE_SERVER_COUNTERS_H_
