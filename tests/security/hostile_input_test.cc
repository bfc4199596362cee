// Hostile input against real replicas: ids made of NATS's special
// characters (a bare "*" is the wildcard subscription, not an id),
// whitespace, CR/LF, NUL and escape look-alikes route only to
// their own key across two replicas on a real nats-server; oversized keys
// and messages get precise errors; rows over the limit reach subscribers as
// an error or `stale`, never as silence. The replicas stay healthy.
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "adapters/bus/nats_bus.h"
#include "gtest/gtest.h"
#include "tests/e2e/e2e_harness.h"
#include "tests/testing/nats_server.h"
#include "tests/testing/wait.h"

namespace entitysync::testing {
namespace {

std::unique_ptr<EntitySyncServer> Replica(const NatsServer& nats,
                                          const std::string& prefix,
                                          ServerOptions options) {
  options.public_address = "127.0.0.1:0";
  options.internal_address = "127.0.0.1:0";
  NatsBusOptions bus;
  bus.urls = {nats.url()};
  bus.subject_prefix = prefix;
  options.bus = NewNatsBus(bus);
  return StartServer(std::move(options));
}

grpc::Status NotifyRows(int internal_port, const std::string& id,
                        const std::string& row) {
  auto stub = v1::Notifier::NewStub(Channel(internal_port));
  v1::NotifyRequest request;
  v1::Change* change = request.add_changes();
  change->mutable_key()->set_entity("notes");
  change->mutable_key()->set_id(id);
  v1::Row* r = change->mutable_rows()->add_rows();
  r->set_data(row);
  r->set_content_type("text/plain");
  v1::NotifyResponse response;
  grpc::ClientContext context;
  return stub->Notify(&context, request, &response);
}

TEST(HostileInputTest, SpecialIdsRouteOnlyToTheirOwnKeyAcrossReplicas) {
  NatsServer nats;
  const std::string prefix = absl::StrCat("hostile", getpid());
  // Open mode: Notify's inline rows are pushed as they are.
  auto a = Replica(nats, prefix, ServerOptions{});
  auto b = Replica(nats, prefix, ServerOptions{});
  ASSERT_TRUE(a && b);
  ASSERT_TRUE(WaitFor([&] {
    return HealthStatus(a->internal_port()) == 1 &&
           HealthStatus(b->internal_port()) == 1;
  }));
  const std::vector<std::string> ids = {".",
                                        "..",
                                        "a.",
                                        ".a",
                                        "**",
                                        ">",
                                        "a.*",
                                        "a.>",
                                        " ",
                                        "a b",
                                        "\r\n",
                                        "x\r\ny",
                                        "\t",
                                        std::string("a\0b", 3),
                                        std::string("\0", 1),
                                        "~2E",
                                        "~",
                                        "%2E",
                                        "a~2Eb",
                                        std::string(1024, '.'),
                                        "✓.✓"};
  RawStream s(a->public_port());
  for (const std::string& id : ids) {
    ASSERT_TRUE(s.AwaitSubscribed(s.Subscribe("notes", id)))
        << "id of " << id.size() << " bytes";
  }
  // Each id changed on the other replica, with its index as the row.
  for (size_t i = 0; i < ids.size(); ++i) {
    const grpc::Status notified =
        NotifyRows(b->internal_port(), ids[i], absl::StrCat(i));
    ASSERT_TRUE(notified.ok())
        << "id #" << i << ": " << notified.error_message();
  }
  for (size_t i = 0; i < ids.size(); ++i) {
    auto u = s.AwaitUpdate(ids[i]);
    ASSERT_TRUE(u) << "no update for id #" << i;
  }
  absl::SleepFor(absl::Milliseconds(200));
  for (size_t i = 0; i < ids.size(); ++i) {
    const auto updates = s.Updates(ids[i]);
    ASSERT_EQ(updates.size(), 1u) << "id #" << i << " got another key's rows";
    EXPECT_EQ(updates[0].rows(0).data(), absl::StrCat(i)) << "id #" << i;
  }
  EXPECT_EQ(HealthStatus(a->internal_port()), 1);
  EXPECT_EQ(HealthStatus(b->internal_port()), 1);
}

class HostileLimitsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ServerOptions options;
    options.config = ItemsConfig(backend_.target());
    options.limits.max_row_bytes = 1000;
    options.limits.max_request_bytes = 64 << 10;
    options.public_address = "127.0.0.1:0";
    options.internal_address = "127.0.0.1:0";
    server_ = StartServer(std::move(options));
    ASSERT_NE(server_, nullptr);
  }
  ItemsBackend backend_;
  std::unique_ptr<EntitySyncServer> server_;
};

TEST_F(HostileLimitsTest, OversizedKeysGetPreciseErrors) {
  RawStream s(server_->public_port());
  auto long_id = s.AwaitError(s.Subscribe("items", std::string(10 << 10, 'x')));
  ASSERT_TRUE(long_id);
  EXPECT_EQ(long_id->error().code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_TRUE(absl::StrContains(long_id->error().message(), "limit is 1024"));
  auto long_entity = s.AwaitError(s.Subscribe(std::string(10 << 10, 'e'), "1"));
  ASSERT_TRUE(long_entity);
  EXPECT_TRUE(absl::StrContains(long_entity->error().message(), "limit is 64"));
  auto notify =
      NotifyRows(server_->internal_port(), std::string(10 << 10, 'x'), "r");
  EXPECT_EQ(notify.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  // The stream is still up.
  backend_.Set("ok", "fine");
  EXPECT_TRUE(s.AwaitSubscribed(s.Subscribe("items", "ok")));
}

TEST_F(HostileLimitsTest, MessageOverTheRequestLimitEndsOnlyThatStream) {
  backend_.Set("calm", "v1");
  RawStream calm(server_->public_port());
  ASSERT_TRUE(calm.AwaitSubscribed(calm.Subscribe("items", "calm")));
  RawStream big(server_->public_port());
  v1::SubscribeRequest request;
  request.set_request_id(1);
  request.mutable_authenticate()->set_secret(std::string(100 << 10, 'c'));
  big.Send(request);
  ASSERT_TRUE(WaitFor([&] { return big.status().has_value(); }));
  EXPECT_EQ(big.status()->error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED);
  const uint64_t v2 = backend_.Set("calm", "v2");
  auto stub = v1::Notifier::NewStub(Channel(server_->internal_port()));
  v1::NotifyRequest notify;
  notify.add_changes()->mutable_key()->set_entity("items");
  notify.mutable_changes(0)->mutable_key()->set_id("calm");
  v1::NotifyResponse response;
  grpc::ClientContext context;
  ASSERT_TRUE(stub->Notify(&context, notify, &response).ok());
  EXPECT_TRUE(calm.AwaitUpdate("calm", v2));
}

TEST_F(HostileLimitsTest, ResolverRowsOverTheLimitAreReportedNotSilent) {
  backend_.Set("huge", std::string(5000, 'h'));
  RawStream s(server_->public_port());
  auto at_subscribe = s.AwaitError(s.Subscribe("items", "huge"));
  ASSERT_TRUE(at_subscribe) << "a snapshot over the limit is an error";
  EXPECT_EQ(at_subscribe->error().code(), grpc::StatusCode::RESOURCE_EXHAUSTED);

  // A key that grows over the limit later: `stale`, then a fresh update
  // once it fits again.
  backend_.Set("grows", "small");
  ASSERT_TRUE(s.AwaitSubscribed(s.Subscribe("items", "grows")));
  ASSERT_TRUE(s.AwaitUpdate("grows"));
  auto stub = v1::Notifier::NewStub(Channel(server_->internal_port()));
  auto notify = [&] {
    v1::NotifyRequest request;
    request.add_changes()->mutable_key()->set_entity("items");
    request.mutable_changes(0)->mutable_key()->set_id("grows");
    v1::NotifyResponse response;
    grpc::ClientContext context;
    return stub->Notify(&context, request, &response);
  };
  backend_.Set("grows", std::string(5000, 'g'));
  ASSERT_TRUE(notify().ok());
  EXPECT_TRUE(s.Await([](const v1::SubscribeResponse& m) {
    return m.has_stale() && m.stale().key().id() == "grows";
  })) << "no stale signal for rows over the limit";
  const uint64_t v = backend_.Set("grows", "small again");
  ASSERT_TRUE(notify().ok());
  EXPECT_TRUE(s.AwaitUpdate("grows", v));
}

}  // namespace
}  // namespace entitysync::testing
