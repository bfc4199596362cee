// VersionTable: the load generator's model of the backing store, shared by
// the notifier (which changes keys) and the benchmark resolver (which
// answers with their current state). Per key index: a version, starting at
// 1, and the intended notify time of the change that produced it (0 before
// any change). The notifier bumps a key before announcing it, so a resolve
// triggered by the announcement sees the new version and time.
//
// Thread-safe: one lock, held for a few array accesses.
#ifndef ENTITYSYNC_BENCH_VERSION_TABLE_H_
#define ENTITYSYNC_BENCH_VERSION_TABLE_H_

#include <cstdint>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "absl/types/span.h"
#include "bench/row_stamp.h"

namespace entitysync {
namespace bench {

class VersionTable {
 public:
  explicit VersionTable(uint64_t size);

  // For each key (repeats allowed): version + 1, with this notify time.
  void Bump(absl::Span<const uint64_t> keys, int64_t notify_time_ns);
  // `key` must be < size.
  RowStamp Get(uint64_t key) const;

 private:
  mutable absl::Mutex mu_;
  // A single lock rather than one per key: the version and the time of a
  // key must be read together, and calls touch few keys.
  std::vector<RowStamp> stamps_ ABSL_GUARDED_BY(mu_);
};

}  // namespace bench
}  // namespace entitysync

#endif  // ENTITYSYNC_BENCH_VERSION_TABLE_H_
