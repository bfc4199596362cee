// End to end for the long poll EntitySync.Await on one replica: the real
// server, the real SQLite items resolver over gRPC, and real gRPC clients.
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/match.h"
#include "absl/synchronization/notification.h"
#include "tests/e2e/e2e_harness.h"

namespace entitysync::testing {
namespace {

struct AwaitArgs {
  std::string id = "100";
  std::string entity = "items";
  std::optional<uint64_t> after_version;
  uint32_t timeout_ms = 20000;
  std::string authorization;
};

v1::AwaitRequest MakeRequest(const AwaitArgs& args) {
  v1::AwaitRequest request;
  request.mutable_key()->set_entity(args.entity);
  request.mutable_key()->set_id(args.id);
  if (args.after_version) request.set_after_version(*args.after_version);
  request.set_timeout_ms(args.timeout_ms);
  return request;
}

// One Await call on its own thread, so the test can act while it waits.
class PendingAwait {
 public:
  PendingAwait(int port, const AwaitArgs& args)
      : stub_(v1::EntitySync::NewStub(Channel(port))) {
    if (!args.authorization.empty()) {
      context_.AddMetadata("authorization", args.authorization);
    }
    context_.set_deadline(absl::ToChronoTime(absl::Now() + absl::Minutes(2)));
    request_ = MakeRequest(args);
    thread_ = std::thread([this] {
      status_ = stub_->Await(&context_, request_, &response_);
      done_.Notify();
    });
  }
  ~PendingAwait() {
    context_.TryCancel();
    thread_.join();
  }
  bool done() const { return done_.HasBeenNotified(); }
  bool Wait(absl::Duration timeout = absl::Seconds(20)) {
    return done_.WaitForNotificationWithTimeout(timeout);
  }
  void Cancel() { context_.TryCancel(); }
  // Valid once done().
  const grpc::Status& status() const { return status_; }
  const v1::AwaitResponse& response() const { return response_; }

 private:
  std::unique_ptr<v1::EntitySync::Stub> stub_;
  grpc::ClientContext context_;
  v1::AwaitRequest request_;
  v1::AwaitResponse response_;
  grpc::Status status_;
  absl::Notification done_;
  std::thread thread_;
};

class AwaitTest : public ::testing::Test {
 protected:
  void SetUp() override { Start(ServerOptions{}); }

  void Start(ServerOptions options) {
    server_.reset();
    options.config = ItemsConfig(backend_.target());
    options.public_address = "127.0.0.1:0";
    options.internal_address = "127.0.0.1:0";
    server_ = StartServer(std::move(options));
    ASSERT_NE(server_, nullptr);
  }
  int pub() const { return server_->public_port(); }
  int internal() const { return server_->internal_port(); }

  grpc::Status Call(const AwaitArgs& args, v1::AwaitResponse* response) {
    auto stub = v1::EntitySync::NewStub(Channel(pub()));
    grpc::ClientContext context;
    if (!args.authorization.empty()) {
      context.AddMetadata("authorization", args.authorization);
    }
    context.set_deadline(absl::ToChronoTime(absl::Now() + absl::Minutes(1)));
    return stub->Await(&context, MakeRequest(args), response);
  }

  // The call is registered in the hub and waiting.
  bool Waiting(size_t awaits) {
    return WaitFor([&] {
      return server_->await_count() == awaits &&
             server_->hub().subscription_count() == awaits;
    });
  }

  ItemsBackend backend_;
  std::unique_ptr<EntitySyncServer> server_;
};

TEST_F(AwaitTest, AnswersAtOnceWhenANewerVersionExists) {
  backend_.Set("100", "Chair");
  const uint64_t v = backend_.Set("100", "Lamp");
  ASSERT_GT(v, 1u);
  AwaitArgs args;
  args.after_version = v - 1;
  v1::AwaitResponse response;
  ASSERT_TRUE(Call(args, &response).ok());
  EXPECT_FALSE(response.timed_out());
  EXPECT_EQ(response.update().key().entity(), "items");
  EXPECT_EQ(response.update().key().id(), "100");
  EXPECT_EQ(response.update().version(), v);
  ASSERT_EQ(response.update().rows_size(), 1);
  EXPECT_TRUE(
      absl::StrContains(response.update().rows(0).data(), "\"name\":\"Lamp\""))
      << response.DebugString();
  // The waiter is gone once it answered.
  EXPECT_TRUE(Waiting(0));
}

TEST_F(AwaitTest, WithoutAfterVersionAnswersTheCurrentStateAtOnce) {
  const uint64_t v = backend_.Set("100", "Lamp");
  v1::AwaitResponse response;
  ASSERT_TRUE(Call(AwaitArgs{}, &response).ok());
  EXPECT_FALSE(response.timed_out());
  EXPECT_EQ(response.update().version(), v);
  ASSERT_EQ(response.update().rows_size(), 1);

  // A key that does not exist: its current state is "removed".
  AwaitArgs missing;
  missing.id = "404";
  ASSERT_TRUE(Call(missing, &response).ok());
  EXPECT_TRUE(response.update().removed());
  EXPECT_EQ(response.update().rows_size(), 0);
  EXPECT_FALSE(response.timed_out());
}

TEST_F(AwaitTest, WaitsUntilANotifyMakesANewerVersionAndReturnsIt) {
  const uint64_t v1 = backend_.Set("100", "Lamp");
  AwaitArgs args;
  args.after_version = v1;
  PendingAwait call(pub(), args);
  ASSERT_TRUE(Waiting(1));
  // It does not answer with the version the client already has.
  EXPECT_FALSE(call.Wait(absl::Milliseconds(300)));

  const uint64_t v2 = backend_.Set("100", "Desk");
  ASSERT_TRUE(Notify(internal(), {"100"}).ok());
  ASSERT_TRUE(call.Wait()) << "the change ends the wait";
  ASSERT_TRUE(call.status().ok()) << call.status().error_message();
  EXPECT_FALSE(call.response().timed_out());
  EXPECT_EQ(call.response().update().version(), v2);
  ASSERT_EQ(call.response().update().rows_size(), 1);
  EXPECT_TRUE(absl::StrContains(call.response().update().rows(0).data(),
                                "\"name\":\"Desk\""));
  EXPECT_TRUE(Waiting(0));
}

TEST_F(AwaitTest, ExplicitZeroWaitsForAKeyToBeCreated) {
  AwaitArgs args;
  args.id = "new";
  args.after_version = 0;
  PendingAwait call(pub(), args);
  ASSERT_TRUE(Waiting(1));
  EXPECT_FALSE(call.Wait(absl::Milliseconds(300)));
  const uint64_t v = backend_.Set("new", "Chair");
  ASSERT_TRUE(Notify(internal(), {"new"}).ok());
  ASSERT_TRUE(call.Wait());
  ASSERT_TRUE(call.status().ok());
  EXPECT_EQ(call.response().update().version(), v);
  EXPECT_FALSE(call.response().update().removed());
}

TEST_F(AwaitTest, TimesOutWithTheCurrentVersionAndNoRows) {
  const uint64_t v = backend_.Set("100", "Lamp");
  AwaitArgs args;
  args.after_version = v;
  args.timeout_ms = 200;
  v1::AwaitResponse response;
  ASSERT_TRUE(Call(args, &response).ok());
  EXPECT_TRUE(response.timed_out());
  EXPECT_EQ(response.update().key().id(), "100");
  EXPECT_EQ(response.update().version(), v);
  EXPECT_EQ(response.update().rows_size(), 0);
  EXPECT_TRUE(Waiting(0));
}

TEST_F(AwaitTest, DefaultAndMaximumTimeoutsApply) {
  ServerOptions options;
  options.limits.await_default_timeout = absl::Milliseconds(100);
  options.limits.await_max_timeout = absl::Milliseconds(300);
  Start(std::move(options));
  const uint64_t v = backend_.Set("100", "Lamp");
  for (uint32_t timeout_ms : {0u, 600000u}) {
    AwaitArgs args;
    args.after_version = v;
    args.timeout_ms = timeout_ms;
    PendingAwait call(pub(), args);
    // Well before the requested 10 minutes (or the client's 2-minute
    // deadline): the server's limit applies.
    ASSERT_TRUE(call.Wait(absl::Seconds(30))) << timeout_ms;
    ASSERT_TRUE(call.status().ok()) << call.status().error_message();
    EXPECT_TRUE(call.response().timed_out());
  }
}

TEST_F(AwaitTest, ResolverDecidesAccess) {
  backend_.Set("secret", "Vault", {}, {"alice-token"});
  AwaitArgs args;
  args.id = "secret";
  v1::AwaitResponse response;
  grpc::Status status = Call(args, &response);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::PERMISSION_DENIED)
      << status.error_message();
  EXPECT_EQ(response.update().rows_size(), 0);
  EXPECT_TRUE(Waiting(0)) << "a refused call leaves no subscription behind";

  args.authorization = "alice-token";
  ASSERT_TRUE(Call(args, &response).ok());
  ASSERT_EQ(response.update().rows_size(), 1);
  EXPECT_TRUE(absl::StrContains(response.update().rows(0).data(), "Vault"));
}

TEST_F(AwaitTest, BadRequestsGetPreciseErrors) {
  v1::AwaitResponse response;
  AwaitArgs wildcard;
  wildcard.id = "*";
  EXPECT_EQ(Call(wildcard, &response).error_code(),
            grpc::StatusCode::INVALID_ARGUMENT);
  AwaitArgs empty_id;
  empty_id.id = "";
  EXPECT_EQ(Call(empty_id, &response).error_code(),
            grpc::StatusCode::INVALID_ARGUMENT);
  AwaitArgs bad_entity;
  bad_entity.entity = "it ems";
  EXPECT_EQ(Call(bad_entity, &response).error_code(),
            grpc::StatusCode::INVALID_ARGUMENT);
  AwaitArgs unknown;
  unknown.entity = "users";
  EXPECT_EQ(Call(unknown, &response).error_code(), grpc::StatusCode::NOT_FOUND);
  // The credential limit of Subscribe and `authenticate` holds here too.
  AwaitArgs huge_credentials;
  huge_credentials.authorization = std::string(5000, 'a');
  const grpc::Status refused = Call(huge_credentials, &response);
  EXPECT_EQ(refused.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(refused.error_message(),
            "authorization is 5000 bytes; the limit is 4096");
  EXPECT_TRUE(Waiting(0));
}

TEST_F(AwaitTest, ClientCancellationFreesTheWaiter) {
  const uint64_t v = backend_.Set("100", "Lamp");
  AwaitArgs args;
  args.after_version = v;
  args.timeout_ms = 60000;
  PendingAwait call(pub(), args);
  ASSERT_TRUE(Waiting(1));
  call.Cancel();
  ASSERT_TRUE(call.Wait());
  EXPECT_EQ(call.status().error_code(), grpc::StatusCode::CANCELLED);
  EXPECT_TRUE(Waiting(0)) << "the server unregistered the cancelled call";

  auto stub = v1::Admin::NewStub(Channel(internal()));
  v1::StatsResponse stats;
  grpc::ClientContext context;
  ASSERT_TRUE(stub->Stats(&context, v1::StatsRequest(), &stats).ok());
  EXPECT_EQ(stats.subscriptions(), 0u);
  EXPECT_EQ(stats.keys(), 0u);
}

TEST_F(AwaitTest, ConcurrentAwaitLimitGivesResourceExhausted) {
  ServerOptions options;
  options.limits.max_awaits = 2;
  Start(std::move(options));
  const uint64_t v = backend_.Set("100", "Lamp");
  AwaitArgs args;
  args.after_version = v;
  args.timeout_ms = 60000;
  auto first = std::make_unique<PendingAwait>(pub(), args);
  PendingAwait second(pub(), args);
  ASSERT_TRUE(Waiting(2));
  v1::AwaitResponse response;
  grpc::Status status = Call(args, &response);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED)
      << status.error_message();
  // A place frees up when a call ends.
  first.reset();
  ASSERT_TRUE(Waiting(1));
  args.after_version.reset();
  EXPECT_TRUE(Call(args, &response).ok());
}

TEST_F(AwaitTest, ShutdownEndsPendingAwaitsPromptly) {
  const uint64_t v = backend_.Set("100", "Lamp");
  AwaitArgs args;
  args.after_version = v;
  args.timeout_ms = 60000;
  std::vector<std::unique_ptr<PendingAwait>> calls;
  for (int i = 0; i < 3; ++i) {
    calls.push_back(std::make_unique<PendingAwait>(pub(), args));
  }
  ASSERT_TRUE(Waiting(3));
  const absl::Time started = absl::Now();
  server_->Shutdown(absl::Seconds(30));
  // Not a speed check: held-up awaits would keep Shutdown for its whole
  // 30 s grace period.
  EXPECT_LT(absl::Now() - started, absl::Seconds(20));
  for (auto& call : calls) {
    ASSERT_TRUE(call->Wait());
    EXPECT_EQ(call->status().error_code(), grpc::StatusCode::UNAVAILABLE);
    EXPECT_TRUE(
        absl::StrContains(call->status().error_message(), "shutting down"))
        << call->status().error_message();
  }
}

TEST_F(AwaitTest, DrainEndsPendingAwaitsAndRefusesNewOnes) {
  const uint64_t v = backend_.Set("100", "Lamp");
  AwaitArgs args;
  args.after_version = v;
  args.timeout_ms = 60000;
  PendingAwait call(pub(), args);
  ASSERT_TRUE(Waiting(1));
  // A stream keeps the drain going while the test tries a new Await.
  auto stream = std::make_unique<RawStream>(pub());
  ASSERT_TRUE(stream->AwaitSubscribed(stream->Subscribe("items", "100")));
  std::thread drain([&] { server_->Drain(absl::Seconds(20)); });
  ASSERT_TRUE(call.Wait());
  EXPECT_EQ(call.status().error_code(), grpc::StatusCode::UNAVAILABLE);
  EXPECT_TRUE(absl::StrContains(call.status().error_message(), "draining"));
  v1::AwaitResponse response;
  grpc::Status refused = Call(args, &response);
  EXPECT_EQ(refused.error_code(), grpc::StatusCode::UNAVAILABLE);
  stream.reset();
  drain.join();
}

TEST_F(AwaitTest, ManyAwaitsRacingChangesAndTimeoutsAllAnswer) {
  // Deliver, timeout and cancel race on purpose (run under ASan too).
  uint64_t v = backend_.Set("100", "Lamp");
  std::vector<std::unique_ptr<PendingAwait>> calls;
  for (int i = 0; i < 30; ++i) {
    AwaitArgs args;
    args.after_version = v;
    args.timeout_ms = 1 + (i % 5) * 20;
    calls.push_back(std::make_unique<PendingAwait>(pub(), args));
    if (i % 3 == 0) {
      v = backend_.Set("100", absl::StrCat("Lamp ", i));
      ASSERT_TRUE(Notify(internal(), {"100"}).ok());
    }
    if (i % 7 == 0) calls.back()->Cancel();
  }
  for (auto& call : calls) {
    ASSERT_TRUE(call->Wait());
    if (call->status().ok() && !call->response().timed_out()) {
      EXPECT_GT(call->response().update().rows_size(), 0);
    }
  }
  EXPECT_TRUE(Waiting(0));
}

}  // namespace
}  // namespace entitysync::testing
