#include "bench/histogram.h"

#include <algorithm>
#include <cmath>
#include <limits>

#include "absl/numeric/bits.h"
#include "absl/strings/str_format.h"

namespace entitysync {
namespace bench {
namespace {

// Each power of two above kLinear is split into kSubBuckets equal buckets,
// so a bucket is at most 1/kSubBuckets of its values wide; values below
// kLinear (ns) have a bucket each.
constexpr int kSubBits = 7;
constexpr int kSubBuckets = 1 << kSubBits;
constexpr int64_t kLinear = int64_t{2} << kSubBits;
// Magnitudes 2^8 .. 2^62 above the linear part.
constexpr int kBuckets = kLinear + (63 - (kSubBits + 1)) * kSubBuckets;

int64_t ToNanos(double micros) {
  // !(x > 0) also catches NaN.
  if (!(micros > 0)) return 0;
  const double nanos = micros * 1e3;
  if (nanos >= static_cast<double>(std::numeric_limits<int64_t>::max())) {
    return std::numeric_limits<int64_t>::max();
  }
  return std::llround(nanos);
}

double ToMicros(double nanos) { return nanos / 1e3; }

}  // namespace

Histogram::Histogram() : counts_(kBuckets, 0) {}

int Histogram::BucketIndex(int64_t nanos) {
  if (nanos < kLinear) return static_cast<int>(nanos);
  const int magnitude =
      63 - absl::countl_zero(static_cast<uint64_t>(nanos));  // >= kSubBits+1
  const int shift = magnitude - kSubBits;
  const int sub = static_cast<int>(nanos >> shift);  // [kSubBuckets, 2*kSub)
  return static_cast<int>(kLinear) + (shift - 1) * kSubBuckets +
         (sub - kSubBuckets);
}

int64_t Histogram::BucketLow(int index) {
  if (index < kLinear) return index;
  const int j = index - static_cast<int>(kLinear);
  const int shift = j / kSubBuckets + 1;
  const int64_t sub = kSubBuckets + j % kSubBuckets;
  return sub << shift;
}

int64_t Histogram::BucketWidth(int index) {
  if (index < kLinear) return 1;
  return int64_t{1} << ((index - static_cast<int>(kLinear)) / kSubBuckets + 1);
}

void Histogram::Record(double micros, int64_t count) {
  if (count <= 0) return;
  RecordNanos(ToNanos(micros), count);
}

void Histogram::RecordNanos(int64_t nanos, int64_t count) {
  counts_[BucketIndex(nanos)] += count;
  if (count_ == 0) {
    min_nanos_ = max_nanos_ = nanos;
  } else {
    min_nanos_ = std::min(min_nanos_, nanos);
    max_nanos_ = std::max(max_nanos_, nanos);
  }
  count_ += count;
  sum_nanos_ += static_cast<double>(nanos) * static_cast<double>(count);
}

void Histogram::RecordCorrected(double micros,
                                double expected_interval_micros) {
  const int64_t nanos = ToNanos(micros);
  RecordNanos(nanos, 1);
  const int64_t interval = ToNanos(expected_interval_micros);
  if (interval <= 0) return;
  for (int64_t missing = nanos - interval; missing >= interval;
       missing -= interval) {
    RecordNanos(missing, 1);
  }
}

void Histogram::Merge(const Histogram& other) {
  if (other.count_ == 0) return;
  for (int i = 0; i < kBuckets; ++i) counts_[i] += other.counts_[i];
  if (count_ == 0) {
    min_nanos_ = other.min_nanos_;
    max_nanos_ = other.max_nanos_;
  } else {
    min_nanos_ = std::min(min_nanos_, other.min_nanos_);
    max_nanos_ = std::max(max_nanos_, other.max_nanos_);
  }
  count_ += other.count_;
  sum_nanos_ += other.sum_nanos_;
}

void Histogram::Reset() {
  std::fill(counts_.begin(), counts_.end(), 0);
  count_ = 0;
  min_nanos_ = max_nanos_ = 0;
  sum_nanos_ = 0;
}

double Histogram::Min() const { return ToMicros(min_nanos_); }

double Histogram::Max() const { return ToMicros(max_nanos_); }

double Histogram::Mean() const {
  if (count_ == 0) return 0;
  return ToMicros(sum_nanos_ / static_cast<double>(count_));
}

double Histogram::Percentile(double q) const {
  if (count_ == 0) return 0;
  q = std::clamp(q, 0.0, 100.0);
  if (q == 0) return Min();
  if (q == 100) return Max();
  // The rank-th smallest sample, 1-based.
  const int64_t rank = std::clamp<int64_t>(
      static_cast<int64_t>(std::ceil(q / 100 * static_cast<double>(count_))), 1,
      count_);
  int64_t seen = 0;
  for (int i = 0; i < kBuckets; ++i) {
    seen += counts_[i];
    if (seen >= rank) {
      const double mid = static_cast<double>(BucketLow(i)) +
                         static_cast<double>(BucketWidth(i) - 1) / 2;
      return ToMicros(std::clamp(mid, static_cast<double>(min_nanos_),
                                 static_cast<double>(max_nanos_)));
    }
  }
  return Max();
}

std::string Histogram::ToJson() const {
  return absl::StrFormat(
      "{\"count\":%d,\"p50\":%.1f,\"p90\":%.1f,\"p99\":%.1f,\"p999\":%.1f,"
      "\"max\":%.1f,\"mean\":%.1f}",
      count_, Percentile(50), Percentile(90), Percentile(99), Percentile(99.9),
      Max(), Mean());
}

}  // namespace bench
}  // namespace entitysync
