#include "common/process.h"

#include <signal.h>

#include <string>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "common/log.h"

ABSL_FLAG(bool, json_logs, false, "Log one JSON object per line.");

namespace entitysync {
namespace {

sigset_t StopSignals() {
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGTERM);
  return signals;
}

}  // namespace

void StartProcess(int argc, char** argv, absl::string_view usage) {
  const sigset_t signals = StopSignals();
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);
  absl::SetMutexDeadlockDetectionMode(absl::OnDeadlockCycle::kIgnore);
  absl::SetProgramUsageMessage(usage);
  absl::ParseCommandLine(argc, argv);
  SetJsonLogs(absl::GetFlag(FLAGS_json_logs));
}

int WaitForStopSignal(absl::string_view doing) {
  const sigset_t signals = StopSignals();
  int sig = 0;
  sigwait(&signals, &sig);
  Log(LogLevel::kInfo, absl::StrCat("signal ", sig, ": ", doing));
  return sig;
}

}  // namespace entitysync
