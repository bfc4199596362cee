#include "bench/version_table.h"

namespace entitysync {
namespace bench {

VersionTable::VersionTable(uint64_t size)
    : stamps_(size, RowStamp{/*version=*/1, /*notify_time_ns=*/0}) {}

void VersionTable::Bump(absl::Span<const uint64_t> keys,
                        int64_t notify_time_ns) {
  absl::MutexLock lock(&mu_);
  for (uint64_t key : keys) {
    RowStamp& stamp = stamps_[key];
    ++stamp.version;
    stamp.notify_time_ns = notify_time_ns;
  }
}

RowStamp VersionTable::Get(uint64_t key) const {
  absl::MutexLock lock(&mu_);
  return stamps_[key];
}

}  // namespace bench
}  // namespace entitysync
