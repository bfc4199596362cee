// Runs a child process for a test: stdout and stderr go to a log file, and
// the destructor kills it (SIGKILL) if it still runs. Signals for fault
// tests: Kill (SIGKILL), Terminate (SIGTERM), Pause (SIGSTOP), Resume.
#ifndef ENTITYSYNC_TESTS_TESTING_SUBPROCESS_H_
#define ENTITYSYNC_TESTS_TESTING_SUBPROCESS_H_

#include <string>
#include <vector>

#include "absl/time/time.h"

namespace entitysync::testing {

class Subprocess {
 public:
  // Starts `argv` (argv[0] is a path). Check running() for failures.
  Subprocess(std::vector<std::string> argv, std::string log_path);
  ~Subprocess();
  Subprocess(const Subprocess&) = delete;
  Subprocess& operator=(const Subprocess&) = delete;

  bool running();
  void Kill();
  void Terminate();
  void Pause();
  void Resume();
  // Waits for the exit; returns the exit code, -signal when killed, or
  // nullopt-like INT_MIN on timeout.
  int Wait(absl::Duration timeout);
  // The whole log so far.
  std::string Log() const;
  int pid() const { return pid_; }

 private:
  int pid_ = -1;
  bool reaped_ = false;
  int exit_ = 0;
  std::string log_path_;
};

// A free TCP port on 127.0.0.1 (bound and released; a tiny race remains).
int FreePort();
// True once something accepts connections on 127.0.0.1:port.
bool WaitForPort(int port, absl::Duration timeout);

}  // namespace entitysync::testing

#endif  // ENTITYSYNC_TESTS_TESTING_SUBPROCESS_H_
