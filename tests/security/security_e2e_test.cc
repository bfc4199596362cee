// Who may do what: with the real server, the real SQLite resolver and raw
// gRPC clients. Notify and Admin are never served on the public port, and
// require the internal token when the replica has one; new streams are rate
// limited per replica.
#include <memory>
#include <string>

#include "absl/strings/match.h"
#include "gtest/gtest.h"
#include "tests/e2e/e2e_harness.h"
#include "tests/testing/wait.h"

namespace entitysync::testing {
namespace {

constexpr char kToken[] = "s3cret-internal-token";

class SecurityTest : public ::testing::Test {
 protected:
  void Start(ServerOptions options) {
    server_.reset();
    options.config = ItemsConfig(backend_.target());
    options.public_address = "127.0.0.1:0";
    options.internal_address = "127.0.0.1:0";
    server_ = StartServer(std::move(options));
    ASSERT_NE(server_, nullptr);
  }
  void StartWithToken() {
    ServerOptions options;
    options.internal_auth = InternalAuth(kToken);
    Start(std::move(options));
  }
  int pub() const { return server_->public_port(); }
  int internal() const { return server_->internal_port(); }

  // Notify of items/<id> at version `version` with `authorization` (none
  // when empty), on `port`.
  grpc::Status Notify(int port, const std::string& id, uint64_t version,
                      const std::string& authorization) {
    auto stub = v1::Notifier::NewStub(Channel(port));
    v1::NotifyRequest request;
    v1::Change* change = request.add_changes();
    change->mutable_key()->set_entity("items");
    change->mutable_key()->set_id(id);
    change->set_version(version);
    v1::NotifyResponse response;
    grpc::ClientContext context;
    if (!authorization.empty()) {
      context.AddMetadata("authorization", authorization);
    }
    return stub->Notify(&context, request, &response);
  }
  grpc::Status Stats(int port, const std::string& authorization,
                     v1::StatsResponse* response) {
    auto stub = v1::Admin::NewStub(Channel(port));
    grpc::ClientContext context;
    if (!authorization.empty()) {
      context.AddMetadata("authorization", authorization);
    }
    return stub->Stats(&context, v1::StatsRequest(), response);
  }

  ItemsBackend backend_;
  std::unique_ptr<EntitySyncServer> server_;
};

TEST_F(SecurityTest, PublicPortServesNeitherNotifyNorAdmin) {
  StartWithToken();
  // Not even with the right token: the services are not on that port.
  EXPECT_EQ(Notify(pub(), "1", 1, kToken).error_code(),
            grpc::StatusCode::UNIMPLEMENTED);
  v1::StatsResponse stats;
  EXPECT_EQ(Stats(pub(), kToken, &stats).error_code(),
            grpc::StatusCode::UNIMPLEMENTED);
}

TEST_F(SecurityTest, NotifyWithoutTheTokenChangesNothingForSubscribers) {
  StartWithToken();
  backend_.Set("7", "Lamp");
  RawStream s(pub());
  ASSERT_TRUE(s.AwaitSubscribed(s.Subscribe("items", "7")));
  const auto snapshot = s.AwaitUpdate("7");
  ASSERT_TRUE(snapshot);
  const uint64_t v2 = backend_.Set("7", "Desk lamp");

  const grpc::Status missing = Notify(internal(), "7", v2, "");
  EXPECT_EQ(missing.error_code(), grpc::StatusCode::UNAUTHENTICATED);
  EXPECT_TRUE(absl::StrContains(missing.error_message(), "internal token"))
      << missing.error_message();
  const grpc::Status wrong = Notify(internal(), "7", v2, "guess");
  EXPECT_EQ(wrong.error_code(), grpc::StatusCode::UNAUTHENTICATED);
  // The error never echoes what was expected.
  EXPECT_FALSE(absl::StrContains(wrong.error_message(), kToken));
  // A prefix of the token, and the token with a byte more, are wrong too.
  EXPECT_EQ(Notify(internal(), "7", v2, "s3cret").error_code(),
            grpc::StatusCode::UNAUTHENTICATED);
  EXPECT_EQ(Notify(internal(), "7", v2, std::string(kToken) + "x").error_code(),
            grpc::StatusCode::UNAUTHENTICATED);
  EXPECT_FALSE(s.AwaitUpdate("7", v2, absl::Milliseconds(500)))
      << "a refused Notify reached a subscriber";

  // Bare and as a bearer token, it goes through.
  ASSERT_TRUE(Notify(internal(), "7", v2, kToken).ok());
  const auto update = s.AwaitUpdate("7", v2);
  ASSERT_TRUE(update);
  EXPECT_TRUE(absl::StrContains(update->rows(0).data(), "Desk lamp"));
  const uint64_t v3 = backend_.Set("7", "Floor lamp");
  ASSERT_TRUE(
      Notify(internal(), "7", v3, std::string("Bearer ") + kToken).ok());
  EXPECT_TRUE(s.AwaitUpdate("7", v3));
}

TEST_F(SecurityTest, AdminNeedsTheTokenAndHealthStaysOpen) {
  StartWithToken();
  v1::StatsResponse stats;
  EXPECT_EQ(Stats(internal(), "", &stats).error_code(),
            grpc::StatusCode::UNAUTHENTICATED);
  EXPECT_EQ(Stats(internal(), "nope", &stats).error_code(),
            grpc::StatusCode::UNAUTHENTICATED);
  EXPECT_TRUE(Stats(internal(), kToken, &stats).ok());
  EXPECT_FALSE(stats.replica().empty());
  // Kubernetes probes carry no token.
  EXPECT_EQ(HealthStatus(internal()), 1);
}

TEST_F(SecurityTest, WithoutATokenTheInternalPortIsOpen) {
  Start(ServerOptions{});
  EXPECT_TRUE(Notify(internal(), "1", 1, "").ok());
  v1::StatsResponse stats;
  EXPECT_TRUE(Stats(internal(), "", &stats).ok());
}

TEST_F(SecurityTest, NewStreamsOverTheRateAreRefusedAndLaterAccepted) {
  ServerOptions options;
  options.limits.new_stream_rate_per_second = 2;
  options.limits.new_stream_burst = 3;
  Start(std::move(options));
  backend_.Set("1", "Lamp");
  std::vector<std::unique_ptr<RawStream>> streams;
  for (int i = 0; i < 3; ++i) {
    streams.push_back(std::make_unique<RawStream>(pub()));
    ASSERT_TRUE(streams.back()->AwaitSubscribed(
        streams.back()->Subscribe("items", "1")))
        << "stream " << i << " of the burst";
  }
  RawStream refused(pub());
  ASSERT_TRUE(
      WaitFor([&] { return refused.status().has_value(); }, absl::Seconds(5)));
  EXPECT_EQ(refused.status()->error_code(),
            grpc::StatusCode::RESOURCE_EXHAUSTED);
  EXPECT_TRUE(absl::StrContains(refused.status()->error_message(),
                                "new streams over 2 per second"))
      << refused.status()->error_message();

  // The streams already in keep receiving.
  const uint64_t v2 = backend_.Set("1", "Desk lamp");
  auto stub = v1::Notifier::NewStub(Channel(internal()));
  v1::NotifyRequest request;
  *request.add_changes()->mutable_key() = [] {
    v1::EntityKey key;
    key.set_entity("items");
    key.set_id("1");
    return key;
  }();
  request.mutable_changes(0)->set_version(v2);
  v1::NotifyResponse response;
  grpc::ClientContext context;
  ASSERT_TRUE(stub->Notify(&context, request, &response).ok());
  for (const auto& s : streams) EXPECT_TRUE(s->AwaitUpdate("1", v2));

  // Tokens come back at the rate: a stream a second later is accepted.
  absl::SleepFor(absl::Milliseconds(600));
  RawStream later(pub());
  EXPECT_TRUE(later.AwaitSubscribed(later.Subscribe("items", "1")));
}

TEST_F(SecurityTest, RevokedAccessStopsUpdatesAtTheNextReauthorization) {
  ServerOptions options;
  options.reauthorize_interval = absl::Milliseconds(200);
  Start(std::move(options));
  backend_.Set("9", "Plan", {}, {"alice", "bob"});
  RawStream::Options as_alice;
  as_alice.authorization = "alice";
  RawStream::Options as_bob;
  as_bob.authorization = "bob";
  RawStream alice(pub(), as_alice);
  RawStream bob(pub(), as_bob);
  ASSERT_TRUE(alice.AwaitSubscribed(alice.Subscribe("items", "9")));
  ASSERT_TRUE(bob.AwaitSubscribed(bob.Subscribe("items", "9")));
  ASSERT_TRUE(alice.AwaitUpdate("9"));
  ASSERT_TRUE(bob.AwaitUpdate("9"));

  // The backend takes alice off the item's list; nothing is notified.
  backend_.Set("9", "Plan", {}, {"bob"});
  const auto revoked = alice.Await(
      [](const v1::SubscribeResponse& m) {
        return m.has_error() && m.error().key().id() == "9";
      },
      absl::Seconds(5));
  ASSERT_TRUE(revoked) << "no revocation within 5 s";
  EXPECT_EQ(revoked->error().code(),
            static_cast<int>(absl::StatusCode::kPermissionDenied));

  // The next change reaches bob and not alice.
  const uint64_t v3 = backend_.Set("9", "Plan, revised", {}, {"bob"});
  ASSERT_TRUE(Notify(internal(), "9", v3, "").ok());
  ASSERT_TRUE(bob.AwaitUpdate("9", v3));
  absl::SleepFor(absl::Milliseconds(300));
  for (const v1::Update& u : alice.Updates("9")) {
    EXPECT_LT(u.version(), v3) << "rows after the revocation";
  }
  EXPECT_GE(server_->reauthorizer_stats().revoked, 1u);
  // bob keeps access through later sweeps.
  absl::SleepFor(absl::Milliseconds(500));
  EXPECT_FALSE(
      bob.Await([](const v1::SubscribeResponse& m) { return m.has_error(); },
                absl::Milliseconds(1)));
}

}  // namespace
}  // namespace entitysync::testing
