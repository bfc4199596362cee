// NotifyDriver: the load generator's notifier. Each Send first bumps the
// named keys in the VersionTable (so the resolve the announcement triggers
// returns the new version and its intended time), then starts one
// asynchronous Notifier.Notify call naming them, without rows or versions,
// on the next target in turn. Send never waits for earlier calls: the load
// stays open-loop. At most `max_outstanding` calls are in flight; a Send
// beyond that is dropped and counted as an error.
//
// Thread-safe. Must outlive its calls: wait for outstanding() == 0 (or exit
// the process) before destroying it.
#ifndef ENTITYSYNC_BENCH_NOTIFY_DRIVER_H_
#define ENTITYSYNC_BENCH_NOTIFY_DRIVER_H_

#include <atomic>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/time/time.h"
#include "absl/types/span.h"
#include "bench/key_space.h"
#include "bench/version_table.h"
#include "entitysync/v1/entitysync.grpc.pb.h"

namespace entitysync {
namespace bench {

class NotifyDriver {
 public:
  // `targets` must not be empty.
  NotifyDriver(const std::vector<std::string>& targets, std::string entity,
               const KeySpace* keys, VersionTable* table,
               int64_t max_outstanding);

  // One Notify call changing `keys` (1..1000 of them), meant to be sent at
  // `intended`.
  void Send(absl::Span<const uint64_t> keys, absl::Time intended);

  // Blocks until every call has finished or `timeout` passed; true if all
  // finished. Not for gRPC threads.
  bool WaitIdle(absl::Duration timeout) const;

  int64_t calls() const { return calls_.load(std::memory_order_relaxed); }
  int64_t changes() const { return changes_.load(std::memory_order_relaxed); }
  // Calls that failed plus calls dropped at the outstanding cap.
  int64_t errors() const { return errors_.load(std::memory_order_relaxed); }
  int64_t outstanding() const {
    return outstanding_.load(std::memory_order_acquire);
  }

 private:
  struct Call;
  void Finished(Call* call, const grpc::Status& status);

  // Const after construction.
  const std::string entity_;
  const KeySpace* const keys_;
  VersionTable* const table_;
  const int64_t max_outstanding_;
  std::vector<std::unique_ptr<v1::Notifier::Stub>> stubs_;

  std::atomic<uint64_t> next_target_{0};
  std::atomic<int64_t> calls_{0};
  std::atomic<int64_t> changes_{0};
  std::atomic<int64_t> errors_{0};
  std::atomic<int64_t> outstanding_{0};
  std::atomic<int> logged_errors_{0};
};

}  // namespace bench
}  // namespace entitysync

#endif  // ENTITYSYNC_BENCH_NOTIFY_DRIVER_H_
