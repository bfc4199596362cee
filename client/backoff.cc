#include "client/backoff.h"

#include <algorithm>
#include <cstdint>

#include "absl/random/distributions.h"

namespace entitysync {
namespace client {

Backoff::Backoff(absl::Duration initial, absl::Duration max)
    : initial_(std::max(initial, absl::ZeroDuration())),
      max_(std::max(max, initial_)),
      ceiling_(initial_) {}

absl::Duration Backoff::NextDelay(absl::BitGenRef gen) {
  const int64_t ceiling_us = absl::ToInt64Microseconds(ceiling_);
  ceiling_ = std::min(ceiling_ * 2, max_);
  if (ceiling_us <= 0) return absl::ZeroDuration();
  return absl::Microseconds(
      absl::Uniform<int64_t>(absl::IntervalClosed, gen, 0, ceiling_us));
}

}  // namespace client
}  // namespace entitysync
