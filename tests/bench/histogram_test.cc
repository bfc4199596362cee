#include "bench/histogram.h"

#include <algorithm>
#include <cmath>
#include <random>
#include <vector>

#include "gtest/gtest.h"

namespace entitysync {
namespace bench {
namespace {

// The exact q-th percentile of `sorted` with the same rank rule as
// Histogram::Percentile.
double ExactPercentile(const std::vector<double>& sorted, double q) {
  const auto rank = static_cast<size_t>(
      std::max(1.0, std::ceil(q / 100 * static_cast<double>(sorted.size()))));
  return sorted[std::min(rank, sorted.size()) - 1];
}

TEST(HistogramTest, EmptyReportsZeros) {
  Histogram h;
  EXPECT_EQ(h.Count(), 0);
  EXPECT_EQ(h.Percentile(99), 0);
  EXPECT_EQ(h.Mean(), 0);
  EXPECT_EQ(h.ToJson(),
            "{\"count\":0,\"p50\":0.0,\"p90\":0.0,\"p99\":0.0,\"p999\":0.0,"
            "\"max\":0.0,\"mean\":0.0}");
}

TEST(HistogramTest, SingleValueIsExactAtEveryPercentile) {
  Histogram h;
  h.Record(1234.567);
  EXPECT_EQ(h.Count(), 1);
  EXPECT_DOUBLE_EQ(h.Min(), 1234.567);
  EXPECT_DOUBLE_EQ(h.Max(), 1234.567);
  EXPECT_DOUBLE_EQ(h.Mean(), 1234.567);
  EXPECT_DOUBLE_EQ(h.Percentile(0), 1234.567);
  EXPECT_DOUBLE_EQ(h.Percentile(50), 1234.567);
  EXPECT_DOUBLE_EQ(h.Percentile(100), 1234.567);
}

TEST(HistogramTest, PercentilesWithinOnePercentOverManyMagnitudes) {
  // Log-uniform from 0.1 us to 100 s: every bucket size is exercised.
  std::mt19937_64 rng(42);
  std::uniform_real_distribution<double> exponent(-1, 8);
  std::vector<double> values;
  Histogram h;
  for (int i = 0; i < 200000; ++i) {
    const double v = std::pow(10.0, exponent(rng));
    values.push_back(v);
    h.Record(v);
  }
  std::sort(values.begin(), values.end());
  for (double q : {1.0, 10.0, 25.0, 50.0, 75.0, 90.0, 99.0, 99.9, 99.99}) {
    const double exact = ExactPercentile(values, q);
    EXPECT_NEAR(h.Percentile(q), exact, exact * 0.01 + 0.001) << "q=" << q;
  }
  EXPECT_DOUBLE_EQ(h.Min(), std::round(values.front() * 1e3) / 1e3);
  EXPECT_DOUBLE_EQ(h.Max(), std::round(values.back() * 1e3) / 1e3);
  double sum = 0;
  for (double v : values) sum += v;
  EXPECT_NEAR(h.Mean(), sum / values.size(), sum / values.size() * 1e-6);
}

TEST(HistogramTest, UniformPercentilesAreNearTheirRank) {
  Histogram h;
  for (int v = 1; v <= 100000; ++v) h.Record(v);
  EXPECT_NEAR(h.Percentile(50), 50000, 500);
  EXPECT_NEAR(h.Percentile(99), 99000, 990);
  EXPECT_NEAR(h.Percentile(99.9), 99900, 999);
  EXPECT_EQ(h.Percentile(100), 100000);
}

TEST(HistogramTest, RecordWithCountEqualsRepeatedRecords) {
  Histogram once;
  Histogram repeated;
  once.Record(77, 1000);
  once.Record(5000, 10);
  for (int i = 0; i < 1000; ++i) repeated.Record(77);
  for (int i = 0; i < 10; ++i) repeated.Record(5000);
  EXPECT_EQ(once.Count(), 1010);
  EXPECT_EQ(once.ToJson(), repeated.ToJson());
  // 10 of 1010 samples are 5000: p99 is still 77, p99.9 is 5000.
  EXPECT_NEAR(once.Percentile(99), 77, 0.77);
  EXPECT_NEAR(once.Percentile(99.9), 5000, 50);
}

TEST(HistogramTest, NegativeAndNanCountAsZero) {
  Histogram h;
  h.Record(-5);
  h.Record(std::nan(""));
  EXPECT_EQ(h.Count(), 2);
  EXPECT_EQ(h.Max(), 0);
}

TEST(HistogramTest, HugeValuesAreKept) {
  Histogram h;
  h.Record(1e15);  // 1e18 ns, close to the int64 limit
  EXPECT_NEAR(h.Percentile(50), 1e15, 1e13);
}

TEST(HistogramTest, RecordCorrectedAddsTheSamplesAStalledSenderMissed) {
  // A sender meant to send every 100 us stalled for 1000 us: HdrHistogram
  // adds 900, 800, ..., 100.
  Histogram h;
  h.RecordCorrected(1000, 100);
  EXPECT_EQ(h.Count(), 10);
  EXPECT_DOUBLE_EQ(h.Min(), 100);
  EXPECT_DOUBLE_EQ(h.Max(), 1000);
  EXPECT_DOUBLE_EQ(h.Mean(), 550);

  Histogram fast;
  fast.RecordCorrected(50, 100);
  EXPECT_EQ(fast.Count(), 1);
  Histogram no_interval;
  no_interval.RecordCorrected(1000, 0);
  EXPECT_EQ(no_interval.Count(), 1);
}

TEST(HistogramTest, MergeEqualsRecordingIntoOne) {
  Histogram a;
  Histogram b;
  Histogram both;
  for (int i = 1; i <= 1000; ++i) {
    (i % 2 ? a : b).Record(i * 3.5);
    both.Record(i * 3.5);
  }
  Histogram empty;
  a.Merge(empty);
  a.Merge(b);
  EXPECT_EQ(a.ToJson(), both.ToJson());
  EXPECT_EQ(a.Min(), both.Min());
  Histogram into_empty;
  into_empty.Merge(both);
  EXPECT_EQ(into_empty.ToJson(), both.ToJson());
  EXPECT_EQ(into_empty.Min(), 3.5);
}

TEST(HistogramTest, ResetEmpties) {
  Histogram h;
  h.Record(10);
  h.Reset();
  EXPECT_EQ(h.Count(), 0);
  h.Record(20);
  EXPECT_EQ(h.Min(), 20);
}

TEST(HistogramTest, JsonHasTheContractFields) {
  Histogram h;
  h.Record(1500.5);
  EXPECT_EQ(h.ToJson(),
            "{\"count\":1,\"p50\":1500.5,\"p90\":1500.5,\"p99\":1500.5,"
            "\"p999\":1500.5,\"max\":1500.5,\"mean\":1500.5}");
}

}  // namespace
}  // namespace bench
}  // namespace entitysync
