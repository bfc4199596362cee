// Runs the real `entitysync` binary against in-process fake servers and
// checks its output and exit codes.
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/client/fake_entity_sync_server.h"
#include "tests/client/fake_notifier_server.h"

namespace entitysync {
namespace client {
namespace {

using ::entitysync::testing::ErrorMessage;
using ::entitysync::testing::FakeEntitySyncServer;
using ::entitysync::testing::FakeNotifierServer;
using ::entitysync::testing::SubscribedMessage;
using ::entitysync::testing::UpdateMessage;
using ::testing::ElementsAre;
using ::testing::HasSubstr;

struct Result {
  int exit_code = -1;
  std::string out;
};

std::string CliPath() {
  const char* srcdir = std::getenv("TEST_SRCDIR");
  return absl::StrCat(srcdir != nullptr ? srcdir : ".",
                      "/entitysync/client/entitysync");
}

// Runs the CLI with `args` (already shell-quoted); stderr goes to the test
// log.
Result RunCli(const std::string& args) {
  const std::string binary = CliPath();
  Result result;
  FILE* pipe = popen(absl::StrCat(binary, " ", args).c_str(), "r");
  if (pipe == nullptr) return result;
  char buffer[4096];
  size_t n;
  while ((n = fread(buffer, 1, sizeof(buffer), pipe)) > 0) {
    result.out.append(buffer, n);
  }
  const int status = pclose(pipe);
  if (WIFEXITED(status)) result.exit_code = WEXITSTATUS(status);
  return result;
}

std::vector<std::string> Lines(const std::string& text) {
  return absl::StrSplit(text, '\n', absl::SkipEmpty());
}

TEST(EntitysyncCliTest, SubscribePrintsUpdatesAsJsonLinesAndStopsAtCount) {
  FakeEntitySyncServer server;
  ASSERT_TRUE(server.ok());
  server.set_handler([](const v1::SubscribeRequest& request) {
    std::vector<v1::SubscribeResponse> answer;
    if (!request.has_subscribe()) return answer;
    const v1::EntityKey& key = request.subscribe().key();
    answer.push_back(SubscribedMessage(request.request_id(), key));
    answer.push_back(UpdateMessage(key.entity(), key.id(), 1, "{\"n\":1}"));
    answer.push_back(UpdateMessage(key.entity(), key.id(), 1, "dup"));
    answer.push_back(UpdateMessage(key.entity(), key.id(), 2, "{\"n\":2}"));
    answer.push_back(UpdateMessage(key.entity(), key.id(), 3, "{\"n\":3}"));
    return answer;
  });
  const Result result =
      RunCli(absl::StrCat("--target=", server.target(),
                          " --credentials=cli-secret subscribe --count=2"
                          " --timeout=10 items/a/b"));
  EXPECT_EQ(result.exit_code, 0);
  EXPECT_THAT(
      Lines(result.out),
      ElementsAre(
          R"({"key":{"entity":"items","id":"a/b"},"version":1,"removed":false,)"
          R"("rows":[{"content_type":"application/json","data":"{\"n\":1}"}]})",
          R"({"key":{"entity":"items","id":"a/b"},"version":2,"removed":false,)"
          R"("rows":[{"content_type":"application/json","data":"{\"n\":2}"}]})"));
  EXPECT_THAT(server.authorizations(), ElementsAre("cli-secret"));
}

TEST(EntitysyncCliTest, SubscribeFailsWhenEveryKeyIsRefused) {
  FakeEntitySyncServer server;
  ASSERT_TRUE(server.ok());
  server.set_handler([](const v1::SubscribeRequest& request) {
    return std::vector<v1::SubscribeResponse>{
        ErrorMessage(request.request_id(), request.subscribe().key(), 7)};
  });
  const Result result = RunCli(absl::StrCat("--target=", server.target(),
                                            " subscribe --timeout=10 items/1"));
  EXPECT_EQ(result.exit_code, 1);
  EXPECT_EQ(result.out, "");
}

TEST(EntitysyncCliTest, SubscribeTimesOutWithoutEnoughUpdates) {
  FakeEntitySyncServer server;
  ASSERT_TRUE(server.ok());
  const Result result = RunCli(absl::StrCat(
      "--target=", server.target(), " subscribe --count=1 --timeout=0.3 x/1"));
  EXPECT_EQ(result.exit_code, 1);
}

TEST(EntitysyncCliTest, SubscribeExitsZeroOnSigterm) {
  FakeEntitySyncServer server;
  ASSERT_TRUE(server.ok());
  const std::string binary = CliPath();
  const std::string target = absl::StrCat("--target=", server.target());
  std::vector<char*> argv = {
      const_cast<char*>(binary.c_str()), const_cast<char*>(target.c_str()),
      const_cast<char*>("subscribe"), const_cast<char*>("items/1"), nullptr};
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addopen(&actions, STDOUT_FILENO, "/dev/null",
                                   O_WRONLY, 0);
  pid_t pid;
  ASSERT_EQ(posix_spawn(&pid, binary.c_str(), &actions, nullptr, argv.data(),
                        environ),
            0);
  posix_spawn_file_actions_destroy(&actions);
  // Once the subscribe arrived the CLI is up and waiting for signals.
  const bool subscribed = server.WaitForSubscribes(1, absl::Seconds(5));
  kill(pid, SIGTERM);
  int status = 0;
  const absl::Time deadline = absl::Now() + absl::Seconds(5);
  while (waitpid(pid, &status, WNOHANG) == 0 && absl::Now() < deadline) {
    absl::SleepFor(absl::Milliseconds(10));
  }
  if (absl::Now() >= deadline) {
    kill(pid, SIGKILL);
    waitpid(pid, &status, 0);
    FAIL() << "entitysync did not exit on SIGTERM";
  }
  EXPECT_TRUE(subscribed);
  ASSERT_TRUE(WIFEXITED(status));
  EXPECT_EQ(WEXITSTATUS(status), 0);
}

TEST(EntitysyncCliTest, NotifyPrintsAcceptedAndSendsTheChange) {
  FakeNotifierServer server;
  ASSERT_TRUE(server.ok());
  const Result result = RunCli(absl::StrCat(
      "--target=", server.target(),
      " notify items/100 --version 4 --row '{\"a\":1}' --row=b"
      " --content_type=text/plain --local_only --credentials=tok"));
  EXPECT_EQ(result.exit_code, 0);
  EXPECT_EQ(result.out, "accepted 1\n");
  const std::vector<v1::NotifyRequest> requests = server.requests();
  ASSERT_EQ(requests.size(), 1u);
  EXPECT_TRUE(requests[0].local_only());
  const v1::Change& change = requests[0].changes(0);
  EXPECT_EQ(change.key().entity(), "items");
  EXPECT_EQ(change.key().id(), "100");
  EXPECT_EQ(change.version(), 4u);
  ASSERT_EQ(change.rows().rows_size(), 2);
  EXPECT_EQ(change.rows().rows(0).data(), "{\"a\":1}");
  EXPECT_EQ(change.rows().rows(1).content_type(), "text/plain");
  EXPECT_THAT(server.authorizations(), ElementsAre("tok"));
}

TEST(EntitysyncCliTest, NotifyWithoutRowsSendsNoRows) {
  FakeNotifierServer server;
  ASSERT_TRUE(server.ok());
  EXPECT_EQ(
      RunCli(absl::StrCat("--target=", server.target(), " notify items/1"))
          .exit_code,
      0);
  ASSERT_EQ(server.requests().size(), 1u);
  EXPECT_FALSE(server.requests()[0].changes(0).has_rows());
  EXPECT_FALSE(server.requests()[0].changes(0).has_version());
}

TEST(EntitysyncCliTest, NotifyErrorExitsOne) {
  FakeNotifierServer server;
  ASSERT_TRUE(server.ok());
  server.set_status(grpc::Status(grpc::StatusCode::UNAVAILABLE, "bus down"));
  const Result result =
      RunCli(absl::StrCat("--target=", server.target(), " notify items/1"));
  EXPECT_EQ(result.exit_code, 1);
  EXPECT_EQ(result.out, "");
}

TEST(EntitysyncCliTest, UsageErrorExitsTwoAndHelpExitsZero) {
  EXPECT_EQ(RunCli("frobnicate items/1 2>/dev/null").exit_code, 2);
  EXPECT_EQ(RunCli("subscribe 2>/dev/null").exit_code, 2);
  const Result help = RunCli("--help");
  EXPECT_EQ(help.exit_code, 0);
  EXPECT_THAT(help.out, HasSubstr("usage:"));
}

}  // namespace
}  // namespace client
}  // namespace entitysync
