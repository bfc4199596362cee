// WebSocket faults on the transport a replica hosts (--gateway_address):
// the real server with the SQLite resolver, browsers' streams straight on
// its session core. A browser that never reads, connections reset in the
// middle of a frame, a drain with 1,000 browsers on the replica (two
// replicas on a real nats-server), credentials revoked by re-authorization,
// and 10,000 connections opened and dropped at once. Crowds of connections
// run in a process of their own (ws_crowd): the test process could not hold
// both ends of 10,000 under the file limit, and killing that process drops
// them all at once. ASan runs these too.
#include <malloc.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <fstream>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "adapters/bus/nats_bus.h"
#include "adapters/gateway/gateway.h"
#include "gtest/gtest.h"
#include "server/transport/websocket/hosted_gateway.h"
#include "tests/e2e/e2e_harness.h"
#include "tests/e2e/ws_client.h"
#include "tests/testing/nats_server.h"
#include "tests/testing/subprocess.h"
#include "tests/testing/wait.h"

namespace entitysync::testing {
namespace {

namespace beast = gateway::beast;
namespace net = gateway::net;
namespace websocket = gateway::websocket;
using Json = nlohmann::json;

// What ws_crowd printed last (see its header).
struct CrowdState {
  int open = -1;
  int subscribed = -1;
  int reconnects = -1;
  int closed_1012 = -1;
  unsigned long long min_version = 0;
};

class Crowd {
 public:
  // `connections` to the gateways on `ports` (all start on the first).
  Crowd(const std::vector<int>& ports, int connections, const std::string& key,
        bool linger0 = false) {
    std::vector<std::string> argv = {
        absl::StrCat(Srcdir(), "/entitysync/tests/fault/ws_crowd"),
        absl::StrCat("--ports=", absl::StrJoin(ports, ",")),
        absl::StrCat("--connections=", connections),
        absl::StrCat("--key=", key)};
    if (linger0) argv.push_back("--linger0");
    process_ = std::make_unique<Subprocess>(
        argv,
        absl::StrCat(TmpDir(), "/ws_crowd.", getpid(), ".", ++count_, ".log"));
  }

  CrowdState State() const {
    CrowdState state;
    const std::string log = process_->Log();
    const size_t at = log.rfind("STATE ");
    if (at == std::string::npos) return state;
    std::sscanf(log.c_str() + at,
                "STATE open=%d subscribed=%d reconnects=%d closed_1012=%d "
                "min_version=%llu",
                &state.open, &state.subscribed, &state.reconnects,
                &state.closed_1012, &state.min_version);
    return state;
  }
  // Waits until every one of `n` connections is subscribed.
  bool AwaitSubscribed(int n, absl::Duration timeout) const {
    return WaitFor([&] { return State().subscribed == n; }, timeout);
  }
  // Every connection at once, as when the browsers' machine goes away.
  void Drop() {
    process_->Kill();
    process_->Wait(absl::Seconds(10));
  }
  bool running() { return process_->running(); }

 private:
  static std::string Srcdir() {
    const char* dir = std::getenv("TEST_SRCDIR");
    return dir != nullptr ? dir : ".";
  }
  static std::string TmpDir() {
    const char* dir = std::getenv("TEST_TMPDIR");
    return dir != nullptr ? dir : "/tmp";
  }
  static inline int count_ = 0;
  std::unique_ptr<Subprocess> process_;
};

// This process's resident set, after returning what malloc holds free.
size_t RssBytes() {
  malloc_trim(0);
  std::ifstream status("/proc/self/status");
  std::string line;
  while (std::getline(status, line)) {
    if (line.rfind("VmRSS:", 0) == 0) {
      return std::stoull(line.substr(6)) * 1024;
    }
  }
  return 0;
}

void RaiseFileLimit() {
  rlimit files{};
  getrlimit(RLIMIT_NOFILE, &files);
  files.rlim_cur = files.rlim_max;
  setrlimit(RLIMIT_NOFILE, &files);
}

// A replica and the gateway it hosts.
struct Replica {
  std::unique_ptr<EntitySyncServer> server;
  std::unique_ptr<gateway::Gateway> gateway;
  ~Replica() {
    if (gateway != nullptr) gateway->Stop(absl::Seconds(1));
    gateway.reset();
    server.reset();
  }
};

class WebSocketFaultsTest : public ::testing::Test {
 protected:
  void SetUp() override { RaiseFileLimit(); }

  // A replica hosting the gateway; `options` gets the items resolver and
  // port 0 for both of its ports.
  std::unique_ptr<Replica> StartReplica(ServerOptions options,
                                        gateway::GatewayOptions browsers = {}) {
    options.config = ItemsConfig(backend_.target());
    options.public_address = "127.0.0.1:0";
    options.internal_address = "127.0.0.1:0";
    auto replica = std::make_unique<Replica>();
    replica->server = StartServer(std::move(options));
    if (replica->server == nullptr) return nullptr;
    browsers.address = "127.0.0.1:0";
    auto started = StartHostedGateway(replica->server.get(), browsers);
    if (!started.ok()) {
      ADD_FAILURE() << started.status();
      return nullptr;
    }
    replica->gateway = *std::move(started);
    return replica;
  }

  uint64_t Change(const Replica& replica, const std::string& id,
                  const std::string& name) {
    const uint64_t version = backend_.Set(id, name);
    EXPECT_TRUE(Notify(replica.server->internal_port(), {id}).ok());
    return version;
  }

  ItemsBackend backend_;
};

// A browser that stops reading: while its socket is full, updates of its
// key wait in the session's queue and replace each other (conflation), so
// what it holds stays bounded; once its write has stalled for
// --write_stall_timeout the replica closes it and drops its subscription.
// The browser beside it sees every change meanwhile.
TEST_F(WebSocketFaultsTest, ABrowserThatNeverReadsIsConflatedThenClosed) {
  ServerOptions options;
  options.limits.write_stall_timeout = absl::Seconds(2);
  auto replica = StartReplica(std::move(options));
  ASSERT_NE(replica, nullptr);
  backend_.Set("7", "start");
  WsClient stuck(replica->gateway->port(), "entitysync.v1.json");
  int bytes = 4096;
  setsockopt(stuck.native_handle(), SOL_SOCKET, SO_RCVBUF, &bytes,
             sizeof(bytes));
  WsClient healthy(replica->gateway->port(), "entitysync.v1.json");
  stuck.Send(Subscribe("7", 1));
  healthy.Send(Subscribe("7", 1));
  ASSERT_TRUE(stuck.ReadUpdate("7", 0).has_value());
  ASSERT_TRUE(healthy.ReadUpdate("7", 0).has_value());
  const uint64_t conflated_before =
      replica->server->counters().updates_conflated.load();

  // 64 KB names: a few fill the stuck browser's socket.
  const std::string big(64 << 10, 'x');
  uint64_t last = 0;
  const absl::Time start = absl::Now();
  bool closed = false;
  for (int i = 0; !closed && absl::Now() - start < absl::Seconds(20); ++i) {
    last = Change(*replica, "7", absl::StrCat(i, big));
    ASSERT_TRUE(healthy.ReadUpdate("7", last).has_value()) << "change " << i;
    closed = replica->server->hub().subscription_count() == 1;
  }
  ASSERT_TRUE(closed) << "the browser that never reads kept its subscription";
  EXPECT_GT(replica->server->counters().updates_conflated.load(),
            conflated_before)
      << "updates for the stuck browser should have replaced each other";
  EXPECT_TRUE(WaitFor([&] { return replica->gateway->connections() == 1; }));
  // The healthy browser is current and stays so.
  last = Change(*replica, "7", "after");
  EXPECT_TRUE(healthy.ReadUpdate("7", last).has_value());
}

// Connections reset (RST) halfway through a frame, in both directions: a
// browser that sends half of a large message and resets, and one that
// resets while the replica is writing it a large update. Nothing of theirs
// stays behind, and the browser beside them is not disturbed.
TEST_F(WebSocketFaultsTest, ResetsInTheMiddleOfAFrameLeaveNothingBehind) {
  auto replica = StartReplica(ServerOptions{});
  ASSERT_NE(replica, nullptr);
  const int port = replica->gateway->port();
  backend_.Set("calm", "v1");
  backend_.Set("big", std::string(512 << 10, 'b'));
  WsClient calm(port, "entitysync.v1.json");
  calm.Send(Subscribe("calm", 1));
  ASSERT_TRUE(calm.ReadUpdate("calm", 0).has_value());

  for (int i = 0; i < 20; ++i) {
    // Half of a masked 32 KB text frame, then a reset.
    // Everything owed to it was read, so only the reset can end it.
    WsClient half(port, "entitysync.v1.json");
    half.Send(Subscribe("calm", 1));
    ASSERT_TRUE(half.ReadUpdate("calm", 0).has_value());
    std::string frame = {'\x81', static_cast<char>(0x80 | 126),
                         '\x80', '\x00',
                         '\x01', '\x02',
                         '\x03', '\x04'};
    frame.append(16 << 10, 'x');
    ASSERT_EQ(send(half.native_handle(), frame.data(), frame.size(), 0),
              static_cast<ssize_t>(frame.size()));
    linger reset{1, 0};
    setsockopt(half.native_handle(), SOL_SOCKET, SO_LINGER, &reset,
               sizeof(reset));
  }  // each closes here, with RST
  for (int i = 0; i < 20; ++i) {
    // Subscribed to a 512 KB item, reads a little of it, and resets.
    WsClient reader(port, "entitysync.v1.json");
    int bytes = 4096;
    setsockopt(reader.native_handle(), SOL_SOCKET, SO_RCVBUF, &bytes,
               sizeof(bytes));
    reader.Send(Subscribe("big", 1));
    char some[1024];
    ASSERT_GT(recv(reader.native_handle(), some, sizeof(some), 0), 0);
    linger reset{1, 0};
    setsockopt(reader.native_handle(), SOL_SOCKET, SO_LINGER, &reset,
               sizeof(reset));
  }
  EXPECT_TRUE(WaitFor([&] {
    return replica->gateway->connections() == 1 &&
           replica->server->stream_count() == 1 &&
           replica->server->hub().subscription_count() == 1;
  })) << replica->gateway->connections()
      << " connections, " << replica->server->stream_count() << " streams, "
      << replica->server->hub().subscription_count() << " subscriptions";
  const uint64_t v2 = Change(*replica, "calm", "v2");
  EXPECT_TRUE(calm.ReadUpdate("calm", v2).has_value());
  EXPECT_EQ(HealthStatus(replica->server->internal_port()), 1);
}

// SIGTERM's drain with 1,000 browsers on one of two replicas: each is told
// to reconnect (1012), moves to the other replica, subscribes again and
// converges to the last change, made while they move.
TEST_F(WebSocketFaultsTest, ADrainMovesAThousandBrowsersToTheOtherReplica) {
  NatsServer nats;
  const std::string prefix = absl::StrCat("wsfault", getpid());
  std::vector<std::unique_ptr<Replica>> replicas;
  for (int i = 0; i < 2; ++i) {
    ServerOptions options;
    options.goaway_reconnect_within = absl::Seconds(1);
    NatsBusOptions bus;
    bus.urls = {nats.url()};
    bus.subject_prefix = prefix;
    options.bus = NewNatsBus(bus);
    replicas.push_back(StartReplica(std::move(options)));
    ASSERT_NE(replicas.back(), nullptr);
  }
  ASSERT_TRUE(WaitFor([&] {
    return HealthStatus(replicas[0]->server->internal_port()) == 1 &&
           HealthStatus(replicas[1]->server->internal_port()) == 1;
  }));
  backend_.Set("d", "start");
  constexpr int kBrowsers = 1000;
  Crowd crowd({replicas[0]->gateway->port(), replicas[1]->gateway->port()},
              kBrowsers, "d");
  ASSERT_TRUE(crowd.AwaitSubscribed(kBrowsers, absl::Seconds(60)))
      << crowd.State().subscribed << " of " << kBrowsers << " subscribed";
  ASSERT_EQ(replicas[0]->server->stream_count(),
            static_cast<size_t>(kBrowsers));

  // Changes keep coming through replica 1 while replica 0 drains.
  std::atomic<bool> stop{false};
  std::atomic<uint64_t> last{0};
  std::thread writer([&] {
    for (int n = 0; !stop; ++n) {
      last = Change(*replicas[1], "d", absl::StrCat("change ", n));
      absl::SleepFor(absl::Milliseconds(20));
    }
  });
  const absl::Time started = absl::Now();
  replicas[0]->server->Drain(absl::Seconds(30));  // what SIGTERM runs
  const absl::Duration took = absl::Now() - started;
  stop = true;
  writer.join();
  EXPECT_LT(took, absl::Seconds(15))
      << "the drain ends once the browsers have gone, before the grace";
  EXPECT_TRUE(WaitFor(
      [&] {
        const CrowdState state = crowd.State();
        return state.subscribed == kBrowsers &&
               state.min_version >= last.load();
      },
      absl::Seconds(30)))
      << crowd.State().subscribed << " subscribed again, the lowest version "
      << crowd.State().min_version << " (last change " << last.load() << ")";
  const CrowdState state = crowd.State();
  EXPECT_GE(state.closed_1012, kBrowsers) << "each told to reconnect";
  EXPECT_EQ(replicas[1]->server->stream_count(),
            static_cast<size_t>(kBrowsers));
}

// Re-authorization asks the resolver again for each subscription; when it
// denies a browser, the browser gets the key's error (code 7) and no frame
// of that key after it, while another browser keeps getting them.
TEST_F(WebSocketFaultsTest, RevokedCredentialsGetNoFramesAfterTheRevocation) {
  ServerOptions options;
  options.reauthorize_interval = absl::Milliseconds(200);
  auto replica = StartReplica(std::move(options));
  ASSERT_NE(replica, nullptr);
  const int port = replica->gateway->port();
  backend_.Set("9", "Plan", {}, {"alice", "bob"});
  WsClient alice(port, "entitysync.v1.json", absl::Seconds(5), "alice");
  WsClient bob(port, "entitysync.v1.json", absl::Seconds(5), "bob");
  alice.Send(Subscribe("9", 1));
  bob.Send(Subscribe("9", 1));
  ASSERT_TRUE(alice.ReadUpdate("9", 0).has_value());
  ASSERT_TRUE(bob.ReadUpdate("9", 0).has_value());

  // The backend takes alice off the item's list; nothing is notified.
  backend_.Set("9", "Plan", {}, {"bob"});
  std::optional<Json> revoked;
  while (std::optional<std::string> text = alice.Read()) {
    Json message = Json::parse(*text, nullptr, false);
    if (message.value("type", "") == "error") {
      revoked = message;
      break;
    }
  }
  ASSERT_TRUE(revoked.has_value()) << "no revocation within 5 s";
  EXPECT_EQ(revoked->value("code", 0), 7) << revoked->dump();

  // The next changes reach bob and not alice.
  uint64_t v = 0;
  for (int i = 0; i < 3; ++i) {
    v = backend_.Set("9", absl::StrCat("Plan, revised ", i), {}, {"bob"});
    ASSERT_TRUE(Notify(replica->server->internal_port(), {"9"}).ok());
    ASSERT_TRUE(bob.ReadUpdate("9", v).has_value());
  }
  // Alice's connection stays open: a key she may read answers on it, and
  // nothing of the revoked key came before that answer.
  backend_.Set("open", "for everyone");
  alice.Send(Subscribe("open", 2));
  while (std::optional<std::string> text = alice.Read()) {
    Json message = Json::parse(*text, nullptr, false);
    const std::string id =
        message.contains("key") ? message["key"].value("id", "") : "";
    ASSERT_NE(id, "9") << "a frame after the revocation: " << *text;
    if (message.value("type", "") == "update" && id == "open") break;
  }
  EXPECT_GE(replica->server->reauthorizer_stats().revoked, 1u);
}

// 10,000 browsers open at once and all vanish at once, three times (the
// second time with resets instead of closes): every stream, subscription
// and connection goes each time, and the replica's memory comes back to
// where it was after the first round (a leak of 300 bytes a connection
// would show as 6 MB).
TEST_F(WebSocketFaultsTest, TenThousandBrowsersOpenedAndDroppedLeaveNothing) {
  ServerOptions options;
  // The rate limit is not under test: all 10,000 come in at once.
  options.limits.new_stream_rate_per_second = 0;
  gateway::GatewayOptions browsers;
  browsers.max_connections = 20000;
  auto replica = StartReplica(std::move(options), browsers);
  ASSERT_NE(replica, nullptr);
  backend_.Set("crowd", "v1");
  constexpr int kBrowsers = 10000;
  size_t after_first = 0;
  for (int round = 0; round < 3; ++round) {
    Crowd crowd({replica->gateway->port()}, kBrowsers, "crowd",
                /*linger0=*/round == 1);
    ASSERT_TRUE(crowd.AwaitSubscribed(kBrowsers, absl::Seconds(120)))
        << "round " << round << ": " << crowd.State().subscribed << " of "
        << kBrowsers << " subscribed";
    EXPECT_EQ(replica->server->stream_count(), static_cast<size_t>(kBrowsers));
    EXPECT_EQ(replica->server->hub().subscription_count(),
              static_cast<size_t>(kBrowsers));
    crowd.Drop();
    ASSERT_TRUE(WaitFor(
        [&] {
          return replica->gateway->connections() == 0 &&
                 replica->server->stream_count() == 0 &&
                 replica->server->hub().subscription_count() == 0;
        },
        absl::Seconds(60)))
        << "round " << round << ": " << replica->gateway->connections()
        << " connections, " << replica->server->stream_count() << " streams, "
        << replica->server->hub().subscription_count() << " subscriptions left";
    if (round == 0) after_first = RssBytes();
  }
  const size_t after_last = RssBytes();
  std::printf(
      "replica RSS after the first round %zu KB, after the third %zu KB\n",
      after_first / 1024, after_last / 1024);
#if defined(__SANITIZE_ADDRESS__)
  // ASan keeps freed memory in quarantine; its leak check runs at exit.
  (void)after_first;
  (void)after_last;
#else
  EXPECT_LT(after_last, after_first + (6u << 20))
      << "RSS " << after_first / 1024 << " KB after the first round, "
      << after_last / 1024 << " KB after the third";
#endif
  // And the replica still serves.
  WsClient after(replica->gateway->port(), "entitysync.v1.json");
  after.Send(Subscribe("crowd", 1));
  EXPECT_TRUE(after.ReadUpdate("crowd", 0).has_value());
}

}  // namespace
}  // namespace entitysync::testing
