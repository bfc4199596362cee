#include "server/core/server_counters.h"

namespace entitysync {

size_t LatencyHistogram::Bucket(absl::Duration latency) {
  const double seconds = absl::ToDoubleSeconds(latency);
  size_t i = 0;
  while (i < kBounds.size() && seconds > kBounds[i]) ++i;
  return i;
}

void LatencyHistogram::Record(absl::Duration latency) {
  counts_[Bucket(latency)].fetch_add(1, std::memory_order_relaxed);
  sum_nanos_.fetch_add(static_cast<uint64_t>(absl::ToInt64Nanoseconds(latency)),
                       std::memory_order_relaxed);
}

LatencyHistogram::Counts LatencyHistogram::counts() const {
  Counts out;
  for (size_t i = 0; i < out.size(); ++i) {
    out[i] = counts_[i].load(std::memory_order_relaxed);
  }
  return out;
}

double LatencyHistogram::sum_seconds() const {
  return static_cast<double>(sum_nanos_.load(std::memory_order_relaxed)) / 1e9;
}

}  // namespace entitysync
