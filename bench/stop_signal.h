// StopSignal: turns SIGINT and SIGTERM into an absl::Notification, so that
// the benchmark tools can finish and print their results when stopped.
// Signals are taken by one thread with sigwait, never by a handler.
//
// Construct it first in main, before any other thread exists (gRPC's
// included): threads inherit the blocked signal mask it sets. One per
// process; it lives until exit.
#ifndef ENTITYSYNC_BENCH_STOP_SIGNAL_H_
#define ENTITYSYNC_BENCH_STOP_SIGNAL_H_

#include "absl/synchronization/notification.h"

namespace entitysync {
namespace bench {

class StopSignal {
 public:
  StopSignal();
  StopSignal(const StopSignal&) = delete;
  StopSignal& operator=(const StopSignal&) = delete;

  // Notified on the first SIGINT or SIGTERM.
  const absl::Notification& stopped() const { return stopped_; }
  bool HasBeenNotified() const { return stopped_.HasBeenNotified(); }

 private:
  absl::Notification stopped_;
};

}  // namespace bench
}  // namespace entitysync

#endif  // ENTITYSYNC_BENCH_STOP_SIGNAL_H_
