#include "client/notifier.h"

#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/client/fake_notifier_server.h"

namespace entitysync {
namespace client {
namespace {

using ::entitysync::testing::FakeNotifierServer;
using ::testing::ElementsAre;

v1::Change MakeChange(const std::string& id) {
  v1::Change change;
  change.mutable_key()->set_entity("items");
  change.mutable_key()->set_id(id);
  return change;
}

TEST(NotifierTest, SendsTheBatchAndReturnsAccepted) {
  FakeNotifierServer server;
  ASSERT_TRUE(server.ok());
  NotifierOptions options;
  options.target = server.target();
  options.token = "token-1";
  Notifier notifier(options);

  v1::Change with_version = MakeChange("2");
  with_version.set_version(9);
  absl::StatusOr<uint32_t> accepted =
      notifier.Notify({MakeChange("1"), with_version}, /*local_only=*/true);
  ASSERT_TRUE(accepted.ok()) << accepted.status();
  EXPECT_EQ(*accepted, 2u);

  const std::vector<v1::NotifyRequest> requests = server.requests();
  ASSERT_EQ(requests.size(), 1u);
  EXPECT_TRUE(requests[0].local_only());
  ASSERT_EQ(requests[0].changes_size(), 2);
  EXPECT_FALSE(requests[0].changes(0).has_version());
  EXPECT_EQ(requests[0].changes(1).version(), 9u);
  EXPECT_THAT(server.authorizations(), ElementsAre("token-1"));
}

TEST(NotifierTest, ReturnsTheServersErrorUnchanged) {
  FakeNotifierServer server;
  ASSERT_TRUE(server.ok());
  server.set_status(grpc::Status(grpc::StatusCode::INVALID_ARGUMENT,
                                 "changes[0].key.id: empty"));
  NotifierOptions options;
  options.target = server.target();
  Notifier notifier(options);
  const absl::StatusOr<uint32_t> accepted = notifier.Notify({MakeChange("")});
  EXPECT_EQ(accepted.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(accepted.status().message(), "changes[0].key.id: empty");
  EXPECT_THAT(server.authorizations(), ElementsAre(""));
}

TEST(NotifierTest, HonoursTheDeadline) {
  FakeNotifierServer server;
  ASSERT_TRUE(server.ok());
  server.set_delay(absl::Milliseconds(300));
  NotifierOptions options;
  options.target = server.target();
  options.deadline = absl::Milliseconds(50);
  Notifier notifier(options);
  const absl::Time start = absl::Now();
  EXPECT_EQ(notifier.Notify({MakeChange("1")}).status().code(),
            absl::StatusCode::kDeadlineExceeded);
  EXPECT_LT(absl::Now() - start, absl::Milliseconds(250));
}

TEST(NotifierTest, UnreachableServerIsUnavailable) {
  std::string target;
  {
    FakeNotifierServer gone;  // a port that was just freed
    ASSERT_TRUE(gone.ok());
    target = gone.target();
  }
  NotifierOptions options;
  options.target = target;
  Notifier notifier(options);
  EXPECT_EQ(notifier.Notify({MakeChange("1")}).status().code(),
            absl::StatusCode::kUnavailable);
}

}  // namespace
}  // namespace client
}  // namespace entitysync
