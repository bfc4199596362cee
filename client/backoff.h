// Backoff computes retry delays: exponential growth capped at a maximum, with
// "full jitter" (each delay uniform in [0, min(max, initial * 2^attempt)]),
// so that many clients dropped at once do not come back in lockstep.
//
// Thread-compatible: the owner serializes calls.
#ifndef ENTITYSYNC_CLIENT_BACKOFF_H_
#define ENTITYSYNC_CLIENT_BACKOFF_H_

#include "absl/random/bit_gen_ref.h"
#include "absl/time/time.h"

namespace entitysync {
namespace client {

class Backoff {
 public:
  Backoff(absl::Duration initial, absl::Duration max);

  // The delay before the next attempt; each call doubles the ceiling until it
  // reaches max.
  absl::Duration NextDelay(absl::BitGenRef gen);

  // The ceiling of the delay NextDelay would draw from next.
  absl::Duration CurrentCeiling() const { return ceiling_; }

  // After a success: the next delay is drawn from [0, initial] again.
  void Reset() { ceiling_ = initial_; }

 private:
  const absl::Duration initial_;
  const absl::Duration max_;
  absl::Duration ceiling_;
};

}  // namespace client
}  // namespace entitysync

#endif  // ENTITYSYNC_CLIENT_BACKOFF_H_
