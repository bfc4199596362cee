#include "client/backoff.h"

#include <algorithm>

#include "absl/random/random.h"
#include "gtest/gtest.h"

namespace entitysync {
namespace client {
namespace {

TEST(BackoffTest, CeilingDoublesUpToMaxAndResets) {
  absl::BitGen gen;
  Backoff backoff(absl::Milliseconds(100), absl::Milliseconds(500));
  EXPECT_EQ(backoff.CurrentCeiling(), absl::Milliseconds(100));
  const absl::Duration expected[] = {
      absl::Milliseconds(100), absl::Milliseconds(200), absl::Milliseconds(400),
      absl::Milliseconds(500), absl::Milliseconds(500)};
  for (absl::Duration ceiling : expected) {
    EXPECT_EQ(backoff.CurrentCeiling(), ceiling);
    const absl::Duration delay = backoff.NextDelay(gen);
    EXPECT_GE(delay, absl::ZeroDuration());
    EXPECT_LE(delay, ceiling);
  }
  backoff.Reset();
  EXPECT_EQ(backoff.CurrentCeiling(), absl::Milliseconds(100));
}

TEST(BackoffTest, DelaysAreJittered) {
  absl::BitGen gen;
  Backoff backoff(absl::Seconds(10), absl::Seconds(10));
  absl::Duration min = absl::InfiniteDuration();
  absl::Duration max = absl::ZeroDuration();
  for (int i = 0; i < 200; ++i) {
    const absl::Duration delay = backoff.NextDelay(gen);
    min = std::min(min, delay);
    max = std::max(max, delay);
  }
  // Full jitter spreads delays over the whole range; 200 draws landing in
  // one tenth of it would be a bug (or a 1e-180 coincidence).
  EXPECT_LT(min, absl::Seconds(1));
  EXPECT_GT(max, absl::Seconds(9));
}

}  // namespace
}  // namespace client
}  // namespace entitysync
