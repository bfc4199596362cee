#include "bench/stop_signal.h"

#include <pthread.h>
#include <signal.h>

#include <thread>

namespace entitysync {
namespace bench {

StopSignal::StopSignal() {
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);
  // Detached: the process exits without joining it.
  std::thread([this, signals] {
    int signal;
    sigwait(&signals, &signal);
    stopped_.Notify();
  }).detach();
}

}  // namespace bench
}  // namespace entitysync
