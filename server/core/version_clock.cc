#include "server/core/version_clock.h"

#include <algorithm>

#include "absl/time/clock.h"

namespace entitysync {

uint64_t VersionClock::Next() {
  const uint64_t now = static_cast<uint64_t>(absl::ToUnixMicros(absl::Now()));
  uint64_t last = last_.load(std::memory_order_relaxed);
  uint64_t next;
  do {
    next = std::max(last + 1, now);
  } while (!last_.compare_exchange_weak(last, next, std::memory_order_relaxed));
  return next;
}

}  // namespace entitysync
