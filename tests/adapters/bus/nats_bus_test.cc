#include "adapters/bus/nats_bus.h"

#include <atomic>
#include <memory>

#include "tests/adapters/bus/bus_conformance.h"
#include "tests/testing/nats_server.h"
#include "tests/testing/wait.h"

namespace entitysync::testing {
namespace {

// One nats-server shared by the whole suite, started on first use.
NatsServer& SharedServer() {
  static NatsServer* server = new NatsServer();
  return *server;
}

std::unique_ptr<Bus> MakeNatsBus() {
  NatsBusOptions options;
  options.urls = {SharedServer().url()};
  options.subject_prefix = "conformance";
  return NewNatsBus(options);
}

// cnats drops notices for a consumer that falls behind its pending limits; the
// bus must then ask for a resync, so the gap is repaired.
TEST(NatsBusTest, SlowConsumerDropTriggersResync) {
  NatsBusOptions options;
  options.urls = {SharedServer().url()};
  options.subject_prefix = "slow";
  options.pending_messages_limit = 5;
  auto subscriber = NewNatsBus(options);
  auto publisher = NewNatsBus(options);
  std::atomic<int> resyncs{0}, received{0};
  BusHandlers handlers;
  handlers.on_notice = [&](const v1::Notice&) {
    ++received;
    absl::SleepFor(absl::Milliseconds(20));  // A slow consumer.
  };
  handlers.on_resync = [&] { ++resyncs; };
  ASSERT_TRUE(subscriber->Start(handlers).ok());
  ASSERT_TRUE(publisher->Start(BusHandlers{}).ok());
  ASSERT_TRUE(WaitFor([&] {
    return subscriber->state() == BusState::kConnected &&
           publisher->state() == BusState::kConnected;
  }));
  const int connect_resyncs = resyncs.load();
  subscriber->AddInterest("items", "1");
  absl::SleepFor(absl::Milliseconds(50));
  v1::Notice notice;
  notice.mutable_key()->set_entity("items");
  notice.mutable_key()->set_id("1");
  for (int i = 0; i < 200; ++i) ASSERT_TRUE(publisher->Publish(notice).ok());
  EXPECT_TRUE(WaitFor([&] { return resyncs.load() > connect_resyncs; }))
      << "a drop must trigger a resync";
  EXPECT_LT(received.load(), 200) << "cnats dropped some";
  subscriber->Stop();
  publisher->Stop();
}

INSTANTIATE_TEST_SUITE_P(Nats, BusConformanceTest,
                         ::testing::Values(BusFactory{"nats", true,
                                                      &MakeNatsBus}),
                         [](const ::testing::TestParamInfo<BusFactory>& info) {
                           return info.param.name;
                         });

}  // namespace
}  // namespace entitysync::testing
