#include "bench/load_streams.h"

#include <thread>
#include <vector>

#include "absl/time/time.h"
#include "gtest/gtest.h"

namespace entitysync {
namespace bench {
namespace {

constexpr int64_t kSecond = 1000000000;

class DeliveryRecorderTest : public testing::Test {
 protected:
  DeliveryRecorderTest() {
    recorder_.SetWindow(absl::FromUnixNanos(10 * kSecond),
                        absl::FromUnixNanos(20 * kSecond));
  }

  static RowStamp Stamp(int64_t notify_time_ns) {
    return RowStamp{/*version=*/5, notify_time_ns};
  }

  DeliveryRecorder recorder_;
};

TEST_F(DeliveryRecorderTest, NothingCountsBeforeTheWindowIsSet) {
  DeliveryRecorder unset;
  unset.OnUpdate(15 * kSecond, true, Stamp(14 * kSecond), true, 3);
  const DeliveryRecorder::Totals totals = unset.Collect();
  EXPECT_EQ(totals.deliveries, 0);
  EXPECT_EQ(totals.latency.Count(), 0);
}

TEST_F(DeliveryRecorderTest, MeasuresChangesNotifiedInTheWindow) {
  // Notified in the window, arrives 2 ms later.
  recorder_.OnUpdate(15 * kSecond + 2000000, true, Stamp(15 * kSecond), true,
                     2);
  // Notified in the window, arrives after it: measured, not a delivery.
  recorder_.OnUpdate(21 * kSecond, true, Stamp(20 * kSecond - 1000), true, 0);
  // Notified during warmup, arrives in the window: a delivery only.
  recorder_.OnUpdate(11 * kSecond, true, Stamp(9 * kSecond), true, 7);
  const DeliveryRecorder::Totals totals = recorder_.Collect();
  EXPECT_EQ(totals.deliveries, 2);
  ASSERT_EQ(totals.latency.Count(), 2);
  EXPECT_NEAR(totals.latency.Min(), 2000, 1);
  EXPECT_NEAR(totals.latency.Max(), 1000001, 1);
  EXPECT_EQ(totals.superseded, 2);
}

TEST_F(DeliveryRecorderTest, OldVersionsAndUnstampedRowsAreNotMeasured) {
  recorder_.OnUpdate(15 * kSecond, /*newer=*/false, Stamp(14 * kSecond), true,
                     0);
  recorder_.OnUpdate(15 * kSecond, true, Stamp(14 * kSecond),
                     /*has_stamp=*/false, 0);
  // Time 0: the key's initial state, never notified.
  recorder_.OnUpdate(15 * kSecond, true, Stamp(0), true, 0);
  const DeliveryRecorder::Totals totals = recorder_.Collect();
  EXPECT_EQ(totals.deliveries, 3);
  EXPECT_EQ(totals.latency.Count(), 0);
}

TEST_F(DeliveryRecorderTest, SamplesFromManyThreadsAreAllCollected) {
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([this] {
      for (int i = 0; i < 1000; ++i) {
        recorder_.OnUpdate(15 * kSecond + 1000, true, Stamp(15 * kSecond), true,
                           1);
      }
    });
  }
  for (std::thread& thread : threads) thread.join();
  const DeliveryRecorder::Totals totals = recorder_.Collect();
  EXPECT_EQ(totals.deliveries, 4000);
  EXPECT_EQ(totals.latency.Count(), 4000);
  EXPECT_EQ(totals.superseded, 4000);
}

}  // namespace
}  // namespace bench
}  // namespace entitysync
