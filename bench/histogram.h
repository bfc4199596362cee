// Histogram: a log-linear latency histogram in the style of HdrHistogram,
// for the benchmark tools. Values are microseconds (fractions allowed) and
// are kept with about 1% relative precision (exactly below 0.256 us, within
// 1/128 of the value above) over the whole non-negative int64 nanosecond
// range; negative values count as 0. Record is O(1) and allocates nothing;
// one histogram takes about 58 KB.
//
// Not thread-safe: give each thread its own and Merge them, or guard one
// with a lock.
#ifndef ENTITYSYNC_BENCH_HISTOGRAM_H_
#define ENTITYSYNC_BENCH_HISTOGRAM_H_

#include <cstdint>
#include <string>
#include <vector>

namespace entitysync {
namespace bench {

class Histogram {
 public:
  Histogram();

  // Adds `count` samples of `micros`.
  void Record(double micros, int64_t count = 1);

  // Records `micros` and, when it exceeds `expected_interval_micros`, the
  // samples a sender stalled by it would have missed: micros - k * interval
  // for k = 1, 2, ... while they exceed the interval (HdrHistogram's
  // recordValueWithExpectedInterval, the correction for coordinated
  // omission). Costs O(micros / interval).
  void RecordCorrected(double micros, double expected_interval_micros);

  // Adds every sample of `other`.
  void Merge(const Histogram& other);

  void Reset();

  int64_t Count() const { return count_; }
  // 0 when empty. Min, Max and Mean are exact (to the nanosecond).
  double Min() const;
  double Max() const;
  double Mean() const;
  // The value at or below which `q` percent of the samples fall, q in
  // [0, 100] (clamped): the midpoint of the bucket holding that rank,
  // clamped to [Min, Max], so Percentile(0) == Min and Percentile(100) ==
  // Max. 0 when empty.
  double Percentile(double q) const;

  // {"count":n,"p50":x,"p90":x,"p99":x,"p999":x,"max":x,"mean":x}, values
  // in microseconds with one decimal.
  std::string ToJson() const;

 private:
  static int BucketIndex(int64_t nanos);
  static int64_t BucketLow(int index);
  static int64_t BucketWidth(int index);
  void RecordNanos(int64_t nanos, int64_t count);

  std::vector<int64_t> counts_;
  int64_t count_ = 0;
  int64_t min_nanos_ = 0;
  int64_t max_nanos_ = 0;
  // A double: a sum of int64 nanoseconds may overflow; the mean needs no
  // more than double's precision.
  double sum_nanos_ = 0;
};

}  // namespace bench
}  // namespace entitysync

#endif  // ENTITYSYNC_BENCH_HISTOGRAM_H_
