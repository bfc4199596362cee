#include "adapters/bus/redis_bus.h"

#include <atomic>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "tests/adapters/bus/bus_conformance.h"
#include "tests/testing/redis_server.h"
#include "tests/testing/subprocess.h"
#include "tests/testing/wait.h"

namespace entitysync::testing {
namespace {

// One redis-server shared by the conformance suite, started on first use.
// Tests that stop or pause Redis start their own.
RedisServer& SharedServer() {
  static RedisServer* server = new RedisServer();
  return *server;
}

// Interest is declared asynchronously, as with NATS: a test gives Redis this
// long to take a SUBSCRIBE before publishing to it.
constexpr absl::Duration kSettle = absl::Milliseconds(50);

RedisBusOptions FastOptions(const RedisServer& server,
                            const std::string& prefix) {
  RedisBusOptions options;
  options.addresses = {server.address()};
  options.channel_prefix = prefix;
  options.reconnect_wait = absl::Milliseconds(50);
  options.reconnect_jitter = absl::Milliseconds(50);
  return options;
}

std::unique_ptr<Bus> MakeRedisBus() {
  return NewRedisBus(FastOptions(SharedServer(), "conformance"));
}

v1::Notice MakeNotice(const std::string& entity, const std::string& id) {
  v1::Notice notice;
  notice.mutable_key()->set_entity(entity);
  notice.mutable_key()->set_id(id);
  notice.set_origin("redis-test");
  return notice;
}

// Records everything a bus reports.
class Recorder {
 public:
  BusHandlers Handlers() {
    BusHandlers handlers;
    handlers.on_notice = [this](const v1::Notice& n) {
      absl::MutexLock lock(&mu_);
      keys_.push_back(n.key().entity() + "/" + n.key().id());
    };
    handlers.on_state = [this](BusState s) {
      absl::MutexLock lock(&mu_);
      states_.push_back(s);
    };
    handlers.on_resync = [this] {
      absl::MutexLock lock(&mu_);
      ++resyncs_;
    };
    return handlers;
  }
  std::function<void(const std::string&)> ErrorHandler() {
    return [this](const std::string& error) {
      absl::MutexLock lock(&mu_);
      errors_.push_back(error);
    };
  }
  std::vector<std::string> keys() const {
    absl::MutexLock lock(&mu_);
    return keys_;
  }
  // Received notices, except the sentinels of Flush.
  std::vector<std::string> Received() const {
    std::vector<std::string> out;
    for (const std::string& key : keys()) {
      if (!absl::StartsWith(key, "flush/")) out.push_back(key);
    }
    return out;
  }
  int Count(const std::string& key) const {
    int n = 0;
    for (const std::string& k : keys()) n += k == key;
    return n;
  }
  std::vector<BusState> states() const {
    absl::MutexLock lock(&mu_);
    return states_;
  }
  int resyncs() const {
    absl::MutexLock lock(&mu_);
    return resyncs_;
  }
  std::vector<std::string> errors() const {
    absl::MutexLock lock(&mu_);
    return errors_;
  }

 private:
  mutable absl::Mutex mu_;
  std::vector<std::string> keys_;
  std::vector<BusState> states_;
  int resyncs_ = 0;
  std::vector<std::string> errors_;
};

// A started bus and what it reported.
struct TestBus {
  explicit TestBus(RedisBusOptions options) {
    options.on_error = recorder.ErrorHandler();
    bus = NewRedisBus(std::move(options));
    EXPECT_TRUE(bus->Start(recorder.Handlers()).ok());
  }
  ~TestBus() { bus->Stop(); }
  bool connected() const { return bus->state() == BusState::kConnected; }

  Recorder recorder;
  std::unique_ptr<Bus> bus;
};

// Publishes a sentinel from `publisher` to a key `subscriber` listens to and
// waits for it: what `publisher` published before has then arrived (one
// publisher's notices stay in order).
void Flush(TestBus& publisher, TestBus& subscriber) {
  static int round = 0;
  const std::string id = absl::StrCat("s", ++round);
  subscriber.bus->AddInterest("flush", id);
  absl::SleepFor(absl::Milliseconds(20));
  ASSERT_TRUE(publisher.bus->Publish(MakeNotice("flush", id)).ok());
  ASSERT_TRUE(
      WaitFor([&] { return subscriber.recorder.Count("flush/" + id) > 0; }));
  subscriber.bus->RemoveInterest("flush", id);
}

TEST(RedisBusTest, RestartReconnectsResubscribesAndResyncs) {
  RedisServer redis;
  TestBus sub(FastOptions(redis, "restart")),
      pub(FastOptions(redis, "restart"));
  sub.bus->AddInterest("items", "1");
  sub.bus->AddInterest("things", "*");
  ASSERT_TRUE(WaitFor([&] { return sub.connected() && pub.connected(); }));
  absl::SleepFor(kSettle);
  const int resyncs = sub.recorder.resyncs();
  EXPECT_GE(resyncs, 1) << "the first connect resyncs too, like NatsBus";
  ASSERT_TRUE(pub.bus->Publish(MakeNotice("items", "1")).ok());
  ASSERT_TRUE(WaitFor([&] { return sub.recorder.Count("items/1") == 1; }));

  redis.Kill();
  ASSERT_TRUE(WaitFor([&] { return !sub.connected() && !pub.connected(); }));
  EXPECT_EQ(pub.bus->Publish(MakeNotice("items", "1")).code(),
            absl::StatusCode::kUnavailable)
      << "never OK for a notice that cannot reach Redis";
  sub.bus->AddInterest("items", "2");  // Declared during the outage.

  redis.Start();
  ASSERT_TRUE(WaitFor([&] { return sub.connected() && pub.connected(); }));
  EXPECT_GT(sub.recorder.resyncs(), resyncs) << "a reconnect asks for resync";
  const std::vector<BusState> states = sub.recorder.states();
  EXPECT_EQ(states, std::vector<BusState>({BusState::kConnected,
                                           BusState::kDisconnected,
                                           BusState::kConnected}));
  for (const char* id : {"1", "2"}) {
    ASSERT_TRUE(pub.bus->Publish(MakeNotice("items", id)).ok());
  }
  ASSERT_TRUE(pub.bus->Publish(MakeNotice("things", "x")).ok());
  EXPECT_TRUE(WaitFor([&] {
    return sub.recorder.Count("items/1") == 2 &&
           sub.recorder.Count("items/2") == 1 &&
           sub.recorder.Count("things/x") == 1;
  })) << "every subscription is back after the reconnect";
}

TEST(RedisBusTest, DownAtStartupConnectsWhenRedisComes) {
  RedisServer::Options down;
  down.started = false;
  RedisServer redis(down);
  TestBus sub(FastOptions(redis, "late")), pub(FastOptions(redis, "late"));
  sub.bus->AddInterest("items", "1");
  absl::SleepFor(absl::Milliseconds(300));
  EXPECT_EQ(sub.bus->state(), BusState::kDisconnected);
  EXPECT_EQ(pub.bus->Publish(MakeNotice("items", "1")).code(),
            absl::StatusCode::kUnavailable);
  EXPECT_EQ(sub.recorder.resyncs(), 0);
  ASSERT_FALSE(sub.recorder.errors().empty());
  EXPECT_EQ(sub.recorder.errors().size(), 1u)
      << "one report per reason and outage, not one per attempt";
  EXPECT_TRUE(absl::StrContains(sub.recorder.errors()[0], redis.address()))
      << sub.recorder.errors()[0];

  redis.Start();
  ASSERT_TRUE(WaitFor([&] { return sub.connected() && pub.connected(); }));
  EXPECT_EQ(sub.recorder.resyncs(), 1);
  ASSERT_TRUE(pub.bus->Publish(MakeNotice("items", "1")).ok());
  EXPECT_TRUE(WaitFor([&] { return sub.recorder.Count("items/1") == 1; }));
}

TEST(RedisBusTest, IdsWithAnyBytesAreOneChannelEach) {
  TestBus sub(FastOptions(SharedServer(), "odd")),
      wildcard(FastOptions(SharedServer(), "odd")),
      pub(FastOptions(SharedServer(), "odd"));
  // Every ASCII byte alone ("*" alone is the wildcard), glob and encoding
  // look-alikes, and multi-byte UTF-8 (ids are proto strings: UTF-8).
  std::vector<std::string> ids;
  for (int b = 0; b < 128; ++b) {
    if (b != '*') ids.push_back(std::string(1, static_cast<char>(b)));
  }
  for (const char* id :
       {"a?", "a*", "[ab]", "[!a]", "a\\", "\\*", "~41", "a.b", "a b",
        "tab\there", "\xc3\xbc", "\xe2\x9c\x93", "\xf0\x9f\x98\x80"}) {
    ids.push_back(id);
  }
  ids.push_back(std::string("nul\0inside", 10));
  for (const std::string& id : ids) sub.bus->AddInterest("odd", id);
  wildcard.bus->AddInterest("odd", "*");
  ASSERT_TRUE(WaitFor([&] {
    return sub.connected() && wildcard.connected() && pub.connected();
  }));
  absl::SleepFor(kSettle);
  // Ids a glob would match if a channel were ever read as a pattern.
  for (const char* near_miss : {"ab", "abc", "aa", "ax", "a\\\\"}) {
    ASSERT_TRUE(pub.bus->Publish(MakeNotice("odd", near_miss)).ok());
  }
  for (const std::string& id : ids) {
    ASSERT_TRUE(pub.bus->Publish(MakeNotice("odd", id)).ok());
  }
  ASSERT_TRUE(pub.bus->Publish(MakeNotice("odder", "a")).ok());
  Flush(pub, sub);
  Flush(pub, wildcard);
  std::vector<std::string> expected;
  for (const std::string& id : ids) expected.push_back("odd/" + id);
  EXPECT_EQ(sub.recorder.Received(), expected);
  std::vector<std::string> everything;
  for (const char* near_miss : {"ab", "abc", "aa", "ax", "a\\\\"}) {
    everything.push_back(std::string("odd/") + near_miss);
  }
  everything.insert(everything.end(), expected.begin(), expected.end());
  EXPECT_EQ(wildcard.recorder.Received(), everything)
      << "the wildcard gets every id of its entity, once, and no other entity";
}

// Prefixes and entities with glob characters, and prefixes whose channels a
// shorter prefix's pattern would match, never see each other's notices.
TEST(RedisBusTest, NoCrossTalkBetweenPrefixes) {
  TestBus a(FastOptions(SharedServer(), "es?")),
      other(FastOptions(SharedServer(), "esX")),
      p(FastOptions(SharedServer(), "p")),
      longer(FastOptions(SharedServer(), "p.items"));
  a.bus->AddInterest("items", "*");
  a.bus->AddInterest("items", "1");
  a.bus->AddInterest("it*", "*");
  a.bus->AddInterest("i[t]ems", "*");
  p.bus->AddInterest("items", "*");
  // Each publisher hears itself, so we know when Redis has routed its
  // notices: anything that was going to reach `a` or `p` is then on its way.
  other.bus->AddInterest("items", "*");
  longer.bus->AddInterest("x", "*");
  ASSERT_TRUE(WaitFor([&] {
    return a.connected() && other.connected() && p.connected() &&
           longer.connected();
  }));
  absl::SleepFor(kSettle);
  for (const char* id : {"1", "2"}) {
    ASSERT_TRUE(other.bus->Publish(MakeNotice("items", id)).ok());
  }
  // Channel "p.items.x.y", which matches p's pattern "p.items.*".
  ASSERT_TRUE(longer.bus->Publish(MakeNotice("x", "y")).ok());
  ASSERT_TRUE(WaitFor([&] {
    return other.recorder.Count("items/2") == 1 &&
           longer.recorder.Count("x/y") == 1;
  }));
  // Positive controls: the same prefix still works, and each flush below
  // comes after anything the foreign publishes could have delivered.
  ASSERT_TRUE(a.bus->Publish(MakeNotice("items", "3")).ok());
  Flush(a, a);
  Flush(p, p);
  EXPECT_EQ(a.recorder.Received(), std::vector<std::string>({"items/3"}))
      << "\"es?\" is a literal prefix, and \"it*\" a literal entity";
  EXPECT_TRUE(p.recorder.Received().empty())
      << "prefix \"p\" must not hear prefix \"p.items\"";
}

// Notices Redis sent before it read the UNSUBSCRIBE are dropped: none
// arrives after RemoveInterest returned.
TEST(RedisBusTest, NoNoticeAfterRemoveInterestReturns) {
  TestBus witness(FastOptions(SharedServer(), "remove")),
      pub(FastOptions(SharedServer(), "remove"));
  auto sub = NewRedisBus(FastOptions(SharedServer(), "remove"));
  absl::Notification in_handler, release;
  std::atomic<int> delivered{0};
  BusHandlers handlers;
  handlers.on_notice = [&](const v1::Notice&) {
    if (++delivered == 1) {
      in_handler.Notify();
      // Holds the bus thread, so the second notice waits in its socket.
      release.WaitForNotificationWithTimeout(absl::Seconds(10));
    }
  };
  ASSERT_TRUE(sub->Start(handlers).ok());
  sub->AddInterest("items", "1");
  witness.bus->AddInterest("items", "1");
  ASSERT_TRUE(WaitFor([&] {
    return sub->state() == BusState::kConnected && witness.connected() &&
           pub.connected();
  }));
  absl::SleepFor(kSettle);
  ASSERT_TRUE(pub.bus->Publish(MakeNotice("items", "1")).ok());
  ASSERT_TRUE(in_handler.WaitForNotificationWithTimeout(absl::Seconds(10)));
  ASSERT_TRUE(pub.bus->Publish(MakeNotice("items", "1")).ok());
  // Redis has routed the second notice once the witness has it.
  ASSERT_TRUE(WaitFor([&] { return witness.recorder.Count("items/1") == 2; }));
  sub->RemoveInterest("items", "1");
  release.Notify();
  absl::SleepFor(absl::Milliseconds(100));
  EXPECT_EQ(delivered.load(), 1);
  sub->Stop();
}

// The hub may drop and re-add a key's interest in quick succession.
TEST(RedisBusTest, QuickRemoveAndAddKeepsTheSubscription) {
  TestBus sub(FastOptions(SharedServer(), "churn")),
      pub(FastOptions(SharedServer(), "churn"));
  ASSERT_TRUE(WaitFor([&] { return sub.connected() && pub.connected(); }));
  for (int k = 0; k < 50; ++k) {
    const std::string id = std::to_string(k);
    sub.bus->AddInterest("items", id);
    if (k % 5 == 0) absl::SleepFor(absl::Milliseconds(1));
    sub.bus->RemoveInterest("items", id);
    sub.bus->AddInterest("items", id);
    if (k % 2 == 0) {
      sub.bus->AddInterest("gone", id);
      sub.bus->RemoveInterest("gone", id);
    }
  }
  absl::SleepFor(kSettle);
  for (int k = 0; k < 50; ++k) {
    ASSERT_TRUE(pub.bus->Publish(MakeNotice("items", std::to_string(k))).ok());
    ASSERT_TRUE(pub.bus->Publish(MakeNotice("gone", std::to_string(k))).ok());
  }
  Flush(pub, sub);
  std::vector<std::string> expected;
  for (int k = 0; k < 50; ++k) expected.push_back(absl::StrCat("items/", k));
  EXPECT_EQ(sub.recorder.Received(), expected);
}

TEST(RedisBusTest, PasswordIsSentAndNeverReported) {
  const std::string password = "s3cret-Pw";
  RedisServer::Options with_password;
  with_password.password = password;
  RedisServer redis(with_password);
  RedisBusOptions good = FastOptions(redis, "auth");
  good.password = password;
  RedisBusOptions wrong = FastOptions(redis, "auth");
  wrong.password = "wrong-Pw-123";
  TestBus authed(good), refused(wrong), anonymous(FastOptions(redis, "auth"));
  authed.bus->AddInterest("items", "1");
  ASSERT_TRUE(WaitFor([&] { return authed.connected(); }));
  absl::SleepFor(kSettle);
  ASSERT_TRUE(authed.bus->Publish(MakeNotice("items", "1")).ok());
  EXPECT_TRUE(WaitFor([&] { return authed.recorder.Count("items/1") == 1; }))
      << "received " << authed.recorder.keys().size() << ", states "
      << authed.recorder.states().size() << ", errors "
      << (authed.recorder.errors().empty() ? "" : authed.recorder.errors()[0]);

  ASSERT_TRUE(WaitFor([&] {
    return !refused.recorder.errors().empty() &&
           !anonymous.recorder.errors().empty();
  }));
  absl::SleepFor(absl::Milliseconds(200));
  EXPECT_FALSE(refused.connected());
  EXPECT_FALSE(anonymous.connected());
  EXPECT_TRUE(absl::StrContains(anonymous.recorder.errors()[0], "NOAUTH"))
      << anonymous.recorder.errors()[0];
  EXPECT_TRUE(absl::StrContains(refused.recorder.errors()[0], "AUTH"))
      << refused.recorder.errors()[0];
  for (const TestBus* bus : {&authed, &refused, &anonymous}) {
    for (const std::string& error : bus->recorder.errors()) {
      EXPECT_FALSE(absl::StrContains(error, password)) << error;
      EXPECT_FALSE(absl::StrContains(error, "wrong-Pw")) << error;
    }
  }
}

TEST(RedisBusTest, StalledRedisIsNoticedAndRecovered) {
  RedisServer redis;
  RedisBusOptions options = FastOptions(redis, "stall");
  options.ping_interval = absl::Milliseconds(100);
  options.command_timeout = absl::Milliseconds(300);
  options.connect_timeout = absl::Milliseconds(300);
  TestBus bus(options);
  ASSERT_TRUE(WaitFor([&] { return bus.connected(); }));
  const int resyncs = bus.recorder.resyncs();
  redis.Pause();  // Accepts connections, answers nothing.
  ASSERT_TRUE(WaitFor([&] { return !bus.connected(); }, absl::Seconds(3)))
      << "missing PONGs must count as a lost connection";
  EXPECT_EQ(bus.bus->Publish(MakeNotice("items", "1")).code(),
            absl::StatusCode::kUnavailable);
  absl::SleepFor(absl::Milliseconds(500));  // Connect attempts time out.
  EXPECT_FALSE(bus.connected());
  redis.Resume();
  ASSERT_TRUE(WaitFor([&] { return bus.connected(); }));
  EXPECT_GT(bus.recorder.resyncs(), resyncs);
}

// While Redis stalls unnoticed, accepted notices wait in a bounded queue and
// all reach Redis once it answers again.
TEST(RedisBusTest, QueueIsBoundedAndDrainsWhenRedisAnswersAgain) {
  RedisServer redis;
  RedisBusOptions options = FastOptions(redis, "queue");
  options.ping_interval = absl::Seconds(30);
  options.command_timeout = absl::Seconds(30);
  options.max_queued_publishes = 5;
  TestBus sub(options), pub(options);
  sub.bus->AddInterest("items", "1");
  ASSERT_TRUE(WaitFor([&] { return sub.connected() && pub.connected(); }));
  absl::SleepFor(kSettle);
  redis.Pause();
  for (int i = 0; i < 5; ++i) {
    ASSERT_TRUE(pub.bus->Publish(MakeNotice("items", "1")).ok()) << i;
  }
  EXPECT_EQ(pub.bus->Publish(MakeNotice("items", "1")).code(),
            absl::StatusCode::kUnavailable)
      << "the sixth does not fit";
  redis.Resume();
  EXPECT_TRUE(WaitFor([&] { return sub.recorder.Count("items/1") == 5; }));
  EXPECT_TRUE(WaitFor([&] {
    return pub.bus->Publish(MakeNotice("items", "1")).ok();
  })) << "room again once Redis answered";
}

// OK from Publish means Redis gets the notice: one Redis never answered is
// sent again on the next connection.
TEST(RedisBusTest, AcceptedNoticeIsSentAgainAfterAReconnect) {
  RedisServer redis;
  TestBus sub(FastOptions(redis, "resend"));
  RedisBusOptions slow = FastOptions(redis, "resend");
  // The publisher comes back well after the subscriber has resubscribed.
  slow.reconnect_wait = absl::Seconds(2);
  slow.reconnect_jitter = absl::ZeroDuration();
  TestBus pub(slow);
  sub.bus->AddInterest("items", "1");
  ASSERT_TRUE(WaitFor([&] { return sub.connected() && pub.connected(); }));
  absl::SleepFor(kSettle);
  redis.Pause();
  ASSERT_TRUE(pub.bus->Publish(MakeNotice("items", "1")).ok());
  absl::SleepFor(absl::Milliseconds(50));
  redis.Kill();  // The PUBLISH it had received dies with it.
  ASSERT_TRUE(WaitFor([&] { return !sub.connected() && !pub.connected(); }));
  redis.Start();
  ASSERT_TRUE(WaitFor([&] { return sub.connected(); }));
  EXPECT_FALSE(pub.connected());
  EXPECT_EQ(sub.recorder.Count("items/1"), 0);
  EXPECT_TRUE(WaitFor([&] { return sub.recorder.Count("items/1") == 1; }))
      << "sent again once the publisher reconnected";
}

TEST(RedisBusTest, OversizedNoticeIsResourceExhausted) {
  RedisBusOptions options = FastOptions(SharedServer(), "big");
  options.max_payload_bytes = 100;
  TestBus bus(options);
  ASSERT_TRUE(WaitFor([&] { return bus.connected(); }));
  v1::Notice notice = MakeNotice("items", "1");
  notice.mutable_rows()->add_rows()->set_data(std::string(200, 'x'));
  EXPECT_EQ(bus.bus->Publish(notice).code(),
            absl::StatusCode::kResourceExhausted);
  EXPECT_TRUE(bus.bus->Publish(MakeNotice("items", "1")).ok());
}

TEST(RedisBusTest, TriesTheNextAddressInTurn) {
  RedisBusOptions options = FastOptions(SharedServer(), "failover");
  options.addresses = {absl::StrCat("127.0.0.1:", FreePort()),
                       "redis://" + SharedServer().address() + "/0"};
  TestBus bus(options);
  EXPECT_TRUE(WaitFor([&] { return bus.connected(); }));
}

TEST(RedisBusTest, MalformedAddressesAreRejectedWithoutEchoingCredentials) {
  for (const char* address :
       {"redis://:hunter2@127.0.0.1:6379", "127.0.0.1:port", "::1:6379",
        "rediss://127.0.0.1:6379", "127.0.0.1:70000", ":6379", "[::1"}) {
    RedisBusOptions options;
    options.addresses = {address};
    auto bus = NewRedisBus(options);
    const absl::Status status = bus->Start(BusHandlers{});
    EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument) << address;
    EXPECT_FALSE(absl::StrContains(status.message(), "hunter2"));
    bus->Stop();
  }
}

INSTANTIATE_TEST_SUITE_P(Redis, BusConformanceTest,
                         ::testing::Values(BusFactory{"redis", true,
                                                      &MakeRedisBus}),
                         [](const ::testing::TestParamInfo<BusFactory>& info) {
                           return info.param.name;
                         });

}  // namespace
}  // namespace entitysync::testing
