#include "tests/testing/redis_server.h"

#include <unistd.h>

#include <cstdlib>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"

namespace entitysync::testing {

RedisServer::RedisServer(Options options)
    : options_(std::move(options)), port_(FreePort()) {
  if (options_.started) Start();
}

void RedisServer::Start() {
  const char* tmp = std::getenv("TEST_TMPDIR");
  const std::string dir = tmp != nullptr ? tmp : "/tmp";
  std::vector<std::string> argv = {
      Binary(), "--port", std::to_string(port_), "--bind", "127.0.0.1",
      "--save", "",       "--appendonly",        "no",     "--dir",
      dir};
  if (!options_.password.empty()) {
    argv.push_back("--requirepass");
    argv.push_back(options_.password);
  }
  process_ = std::make_unique<Subprocess>(
      std::move(argv), absl::StrCat(dir, "/redis-", port_, ".log"));
  ASSERT_TRUE(WaitForPort(port_, absl::Seconds(10)))
      << "redis-server did not start: " << process_->Log();
}

void RedisServer::Kill() {
  process_->Kill();
  process_->Wait(absl::Seconds(5));
}

void RedisServer::Restart() {
  Kill();
  Start();
}

void RedisServer::Pause() { process_->Pause(); }
void RedisServer::Resume() { process_->Resume(); }

std::string RedisServer::address() const {
  return absl::StrCat("127.0.0.1:", port_);
}

std::string RedisServer::Log() const {
  return process_ != nullptr ? process_->Log() : "";
}

std::string RedisServer::Binary() {
  for (const char* path : {"/usr/bin/redis-server", "/usr/sbin/redis-server",
                           "/usr/local/bin/redis-server"}) {
    if (access(path, X_OK) == 0) return path;
  }
  return "redis-server";
}

}  // namespace entitysync::testing
