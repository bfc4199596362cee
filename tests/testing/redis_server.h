// A real redis-server for tests, on a free loopback port that stays the same
// across Restart, so clients reconnect to it. No persistence (nothing is
// written but its log, in TEST_TMPDIR). Killed with the test.
#ifndef ENTITYSYNC_TESTS_TESTING_REDIS_SERVER_H_
#define ENTITYSYNC_TESTS_TESTING_REDIS_SERVER_H_

#include <memory>
#include <string>

#include "tests/testing/subprocess.h"

namespace entitysync::testing {

class RedisServer {
 public:
  struct Options {
    // false: pick the port but do not start yet (Redis down at start-up).
    bool started = true;
    // Non-empty: clients must AUTH with it (requirepass).
    std::string password;
  };

  RedisServer() : RedisServer(Options{}) {}
  explicit RedisServer(Options options);

  // Starts it (again) on the same port; a test failure when it does not
  // accept connections within 10 s.
  void Start();
  // SIGKILL, and wait for the exit.
  void Kill();
  void Restart();
  // SIGSTOP / SIGCONT: a Redis that accepts connections but never answers.
  void Pause();
  void Resume();

  int port() const { return port_; }
  // "127.0.0.1:<port>", for RedisBusOptions::addresses.
  std::string address() const;
  std::string Log() const;

  static std::string Binary();

 private:
  const Options options_;
  const int port_;
  std::unique_ptr<Subprocess> process_;
};

}  // namespace entitysync::testing

#endif  // ENTITYSYNC_TESTS_TESTING_REDIS_SERVER_H_
