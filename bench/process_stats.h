// What the benchmark tools report about their own process, read from the
// kernel. Thread-safe.
#ifndef ENTITYSYNC_BENCH_PROCESS_STATS_H_
#define ENTITYSYNC_BENCH_PROCESS_STATS_H_

#include <cstdint>

#include "absl/status/statusor.h"

namespace entitysync {
namespace bench {

// User plus system CPU time of the whole process so far.
double ProcessCpuSeconds();

// Resident set size (VmRSS); 0 if /proc is unreadable.
int64_t ProcessRssBytes();

// Raises the soft RLIMIT_NOFILE to the hard limit and returns the new soft
// limit.
absl::StatusOr<uint64_t> RaiseFdLimit();

}  // namespace bench
}  // namespace entitysync

#endif  // ENTITYSYNC_BENCH_PROCESS_STATS_H_
