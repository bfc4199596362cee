// The start and the stop every entitysync binary shares (entitysync-server,
// entitysync-gateway, entitysync-webhook): the command line parsed, the log
// format set (--json_logs, defined here), and SIGINT/SIGTERM taken by one
// thread with sigwait, never by a handler.
#ifndef ENTITYSYNC_COMMON_PROCESS_H_
#define ENTITYSYNC_COMMON_PROCESS_H_

#include "absl/strings/string_view.h"

namespace entitysync {

// First thing in main, before anything starts a thread: blocks SIGINT and
// SIGTERM (every thread started later inherits the mask, so only
// WaitForStopSignal takes them), turns Abseil's mutex deadlock detection
// off (Debian's Abseil is built without NDEBUG, so every absl::Mutex, gRPC's
// included, would record lock graphs: measurable CPU on every lock; tests
// keep it on), parses the command line with `usage`, and sets the log
// format from --json_logs.
void StartProcess(int argc, char** argv, absl::string_view usage);

// Blocks until SIGINT or SIGTERM arrives, logs it as "signal N: <doing>",
// and returns it.
int WaitForStopSignal(absl::string_view doing);

}  // namespace entitysync

#endif  // ENTITYSYNC_COMMON_PROCESS_H_
