// Hostile clients and notice storms against one replica (real server, real
// SQLite resolver, raw gRPC clients): a stream that sends 100,000 subscribe
// requests, clients that cancel while large updates are being written, and
// 10,000 notices on one key in about a second. Each case checks that the
// replica stays healthy and bounded, and that a well-behaved subscriber
// beside the hostile one still converges.
#include <atomic>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "tests/e2e/e2e_harness.h"
#include "tests/testing/wait.h"

namespace entitysync::testing {
namespace {

class StormTest : public ::testing::Test {
 protected:
  void Start(ServerOptions options,
             absl::Duration resolver_delay = absl::ZeroDuration()) {
    backend_ = std::make_unique<ItemsBackend>(resolver_delay);
    options.config = ItemsConfig(backend_->target());
    options.public_address = "127.0.0.1:0";
    options.internal_address = "127.0.0.1:0";
    server_ = StartServer(std::move(options));
    ASSERT_NE(server_, nullptr);
  }
  int pub() const { return server_->public_port(); }

  grpc::Status Notify(const std::vector<std::string>& ids) {
    auto stub = v1::Notifier::NewStub(Channel(server_->internal_port()));
    v1::NotifyRequest request;
    for (const std::string& id : ids) {
      v1::Change* change = request.add_changes();
      change->mutable_key()->set_entity("items");
      change->mutable_key()->set_id(id);
    }
    v1::NotifyResponse response;
    grpc::ClientContext context;
    return stub->Notify(&context, request, &response);
  }

  std::unique_ptr<ItemsBackend> backend_;
  std::unique_ptr<EntitySyncServer> server_;
};

TEST_F(StormTest, HundredThousandSubscribesOnOneStream) {
  Start(ServerOptions{});
  backend_->Set("calm", "v1");
  RawStream healthy(pub());
  ASSERT_TRUE(healthy.AwaitSubscribed(healthy.Subscribe("items", "calm")));

  // The hostile stream writes as fast as gRPC lets it and never reads.
  RawStream::Options quiet;
  quiet.read = false;
  RawStream hostile(pub(), quiet);
  const absl::Time start = absl::Now();
  int sent = 0;
  for (; sent < 100000; ++sent) {
    v1::SubscribeRequest request;
    request.set_request_id(sent + 1);
    request.mutable_subscribe()->mutable_key()->set_entity("items");
    request.mutable_subscribe()->mutable_key()->set_id(absl::StrCat("k", sent));
    if (!hostile.Send(request)) break;  // the replica closed it
  }
  // Bounded: the limits hold (1,000 subscriptions a stream, 200/s after a
  // burst of 1,000), whatever was sent.
  EXPECT_LE(server_->hub().subscription_count(), 1001u);
  EXPECT_LT(absl::Now() - start, absl::Seconds(60));

  // The calm subscriber is unaffected.
  const uint64_t v2 = backend_->Set("calm", "v2");
  ASSERT_TRUE(Notify({"calm"}).ok());
  EXPECT_TRUE(healthy.AwaitUpdate("calm", v2));
  EXPECT_EQ(HealthStatus(server_->internal_port()), 1);
}

TEST_F(StormTest, ClientsCancellingMidWriteLeaveNothingBehind) {
  ServerOptions options;
  Start(std::move(options));
  // Large rows: writes are in flight when the clients go.
  const std::string big(256 << 10, 'x');
  for (int k = 0; k < 8; ++k) backend_->Set(absl::StrCat("big", k), big);
  for (int round = 0; round < 5; ++round) {
    std::vector<std::unique_ptr<RawStream>> streams;
    for (int i = 0; i < 10; ++i) {
      streams.push_back(std::make_unique<RawStream>(pub()));
      for (int k = 0; k < 8; ++k) {
        streams.back()->Subscribe("items", absl::StrCat("big", k));
      }
    }
    std::vector<std::string> ids;
    for (int k = 0; k < 8; ++k) ids.push_back(absl::StrCat("big", k));
    for (int k = 0; k < 8; ++k) backend_->Set(ids[k], big + "!");
    ASSERT_TRUE(Notify(ids).ok());
    absl::SleepFor(absl::Milliseconds(round * 10));
    streams.clear();  // every stream cancelled, writes outstanding or not
  }
  EXPECT_TRUE(WaitFor([&] {
    return server_->stream_count() == 0 &&
           server_->hub().subscription_count() == 0;
  })) << server_->stream_count()
      << " streams, " << server_->hub().subscription_count()
      << " subscriptions left";
  // And the replica still serves.
  RawStream after(pub());
  ASSERT_TRUE(after.AwaitSubscribed(after.Subscribe("items", "big0")));
  EXPECT_TRUE(after.AwaitUpdate("big0"));
}

TEST_F(StormTest, TenThousandNoticesOnOneKeyCoalesce) {
  // A 50 ms resolver: notices pile up while each resolve is in flight.
  Start(ServerOptions{}, absl::Milliseconds(50));
  backend_->Set("hot", "v0");
  std::vector<std::unique_ptr<RawStream>> subscribers;
  for (int i = 0; i < 5; ++i) {
    subscribers.push_back(std::make_unique<RawStream>(pub()));
    ASSERT_TRUE(subscribers.back()->AwaitSubscribed(
        subscribers.back()->Subscribe("items", "hot")));
  }
  const uint64_t calls_before = backend_->calls();
  const absl::Time start = absl::Now();
  uint64_t last = 0;
  // 100 Notify calls of 100 changes each, the item changing meanwhile.
  for (int i = 0; i < 100; ++i) {
    if (i % 10 == 0) last = backend_->Set("hot", absl::StrCat("v", i + 1));
    ASSERT_TRUE(Notify(std::vector<std::string>(100, "hot")).ok());
  }
  const absl::Duration took = absl::Now() - start;
  for (const auto& s : subscribers) {
    const auto u = s->AwaitUpdate("hot", last, absl::Seconds(10));
    ASSERT_TRUE(u) << "converges to the last change";
    const auto updates = s->Updates("hot");
    for (size_t i = 1; i < updates.size(); ++i) {
      EXPECT_GT(updates[i].version(), updates[i - 1].version());
    }
  }
  // Coalesced: at most one resolve in flight and one follow-up at a time,
  // so about (time / resolver latency) + 2 calls, not 10,000.
  const uint64_t calls = backend_->calls() - calls_before;
  EXPECT_LE(calls,
            static_cast<uint64_t>(absl::ToDoubleMilliseconds(took) / 50.0 + 3))
      << calls << " resolver calls for 10,000 notices in " << took;
}

}  // namespace
}  // namespace entitysync::testing
