// FaultProxy: a TCP proxy for fault tests, placed between clients and a
// replica, or between a replica and nats-server. It listens on 127.0.0.1
// (a free port) and forwards each connection to 127.0.0.1:target_port.
// Faults are switched while it runs and apply to live connections:
//
//   Pass()       forward bytes as they come (the default)
//   Delay(d)     hold every chunk d before forwarding it
//   BlackHole()  keep every connection open but forward nothing, either
//                way: a partition only keepalives and pings can notice
//   Reset()      close every current connection with a TCP RST
//   HalfClose()  the client side's FIN: the target reads EOF, while its
//                answers still reach the client
//   Refuse(true) close new connections as soon as they are accepted
//
// One thread accepts; each connection has one thread. Thread-safe.
#ifndef ENTITYSYNC_TESTS_FAULT_FAULT_PROXY_H_
#define ENTITYSYNC_TESTS_FAULT_FAULT_PROXY_H_

#include <atomic>
#include <memory>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"

namespace entitysync::testing {

class FaultProxy {
 public:
  explicit FaultProxy(int target_port);
  ~FaultProxy();
  FaultProxy(const FaultProxy&) = delete;
  FaultProxy& operator=(const FaultProxy&) = delete;

  int port() const { return port_; }

  void Pass();
  void Delay(absl::Duration delay);
  void BlackHole();
  void Reset();
  void HalfClose();
  void Refuse(bool refuse);

  // Connections forwarded now, and accepted since start.
  size_t live() const;
  size_t accepted() const { return accepted_.load(); }

 private:
  enum class Mode { kPass, kDelay, kBlackHole };
  struct Connection {
    int client = -1;
    int upstream = -1;
    std::atomic<bool> reset{false};
    std::atomic<bool> half_close{false};
    std::atomic<bool> done{false};
    std::thread thread;
  };

  void AcceptLoop();
  void Forward(Connection* c);

  const int target_port_;
  int listen_fd_ = -1;
  int port_ = 0;
  std::atomic<bool> stopping_{false};
  std::atomic<bool> refuse_{false};
  std::atomic<Mode> mode_{Mode::kPass};
  std::atomic<int64_t> delay_us_{0};
  std::atomic<size_t> accepted_{0};
  std::thread acceptor_;

  mutable absl::Mutex mu_;
  std::vector<std::unique_ptr<Connection>> connections_ ABSL_GUARDED_BY(mu_);
};

}  // namespace entitysync::testing

#endif  // ENTITYSYNC_TESTS_FAULT_FAULT_PROXY_H_
