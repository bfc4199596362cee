// A real nats-server for tests, on a free loopback port that stays the same
// across Restart, so clients reconnect to it. Killed with the test.
#ifndef ENTITYSYNC_TESTS_TESTING_NATS_SERVER_H_
#define ENTITYSYNC_TESTS_TESTING_NATS_SERVER_H_

#include <cstdlib>
#include <memory>
#include <string>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "tests/testing/subprocess.h"

namespace entitysync::testing {

class NatsServer {
 public:
  // started=false: pick the port but do not start yet (server down at
  // start-up).
  explicit NatsServer(bool started = true) : port_(FreePort()) {
    if (started) Start();
  }

  void Start() {
    const char* dir = std::getenv("TEST_TMPDIR");
    process_ = std::make_unique<Subprocess>(
        std::vector<std::string>{Binary(), "-a", "127.0.0.1", "-p",
                                 std::to_string(port_)},
        absl::StrCat(dir ? dir : "/tmp", "/nats-", port_, ".log"));
    ASSERT_TRUE(WaitForPort(port_, absl::Seconds(10)))
        << "nats-server did not start: " << process_->Log();
  }
  void Kill() {
    process_->Kill();
    process_->Wait(absl::Seconds(5));
  }
  void Restart() {
    Kill();
    Start();
  }
  void Pause() { process_->Pause(); }
  void Resume() { process_->Resume(); }

  int port() const { return port_; }
  std::string url() const { return absl::StrCat("nats://127.0.0.1:", port_); }

  static std::string Binary() {
    for (const char* path : {"/usr/sbin/nats-server", "/usr/bin/nats-server"}) {
      if (access(path, X_OK) == 0) return path;
    }
    return "nats-server";
  }

 private:
  const int port_;
  std::unique_ptr<Subprocess> process_;
};

}  // namespace entitysync::testing

#endif  // ENTITYSYNC_TESTS_TESTING_NATS_SERVER_H_
