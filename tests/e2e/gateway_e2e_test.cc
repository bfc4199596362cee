// The gateway between real WebSocket clients (Boost.Beast, synchronous) and
// the real server with the SQLite resolver: what a browser sees when items
// change, when it reads slowly, when the replica drains and when the gateway
// stops. Runs under ASan in CI, which is the point of the lifetime cases.
#include <sys/socket.h>
#include <sys/time.h>

#include <atomic>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "adapters/gateway/beast.h"
#include "adapters/gateway/gateway.h"
#include "grpcpp/server_builder.h"
#include "nlohmann/json.hpp"
#include "server/transport/websocket/hosted_gateway.h"
#include "tests/e2e/e2e_harness.h"
#include "tests/e2e/ws_client.h"

namespace entitysync::testing {
namespace {

namespace beast = gateway::beast;
namespace websocket = gateway::websocket;
using Json = nlohmann::json;

// Echoes pass-through messages with the caller's credentials.
class EchoBackend : public v1::PassthroughBackend::CallbackService {
 public:
  grpc::ServerUnaryReactor* Handle(grpc::CallbackServerContext* context,
                                   const v1::PassthroughRequest* request,
                                   v1::PassthroughResponse* response) override {
    response->set_has_reply(true);
    response->set_data("echo:" + request->credentials() + ":" +
                       request->data());
    auto* reactor = context->DefaultReactor();
    reactor->Finish(grpc::Status::OK);
    return reactor;
  }
};

// Every test runs against both transports: the standalone gateway (a gRPC
// call per browser, over TCP) and the gateway a replica hosts
// (--gateway_address: browsers' streams straight on the session core).
class GatewayTest : public ::testing::TestWithParam<bool> {
 protected:
  void SetUp() override { Start(/*hosted=*/GetParam()); }

  // The server (with the items resolver and a pass-through echo backend) and
  // a gateway in front of it: over TCP, or hosted as entitysync-server
  // --gateway_address does it.
  void Start(bool hosted) {
    gateway_.reset();
    server_.reset();
    backend_.Set("100", "Desk lamp");
    grpc::ServerBuilder builder;
    int echo_port = 0;
    builder.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(),
                             &echo_port);
    builder.RegisterService(&echo_);
    echo_server_ = builder.BuildAndStart();
    ServerOptions options;
    options.config = ItemsConfig(backend_.target());
    options.config.mutable_passthrough()->set_target(
        absl::StrCat("127.0.0.1:", echo_port));
    options.config.mutable_passthrough()->set_timeout_ms(2000);
    options.public_address = "127.0.0.1:0";
    options.internal_address = "127.0.0.1:0";
    options.goaway_reconnect_within = absl::Milliseconds(200);
    options.limits.write_stall_timeout = write_stall_timeout_;
    server_ = StartServer(std::move(options));
    ASSERT_NE(server_, nullptr);
    gateway::GatewayOptions gateway_options;
    gateway_options.address = "127.0.0.1:0";
    gateway_options.upstream =
        absl::StrCat("127.0.0.1:", server_->public_port());
    gateway_options.max_connection_age = max_connection_age_;
    gateway_options.write_timeout = write_timeout_;
    auto started = hosted ? StartHostedGateway(server_.get(), gateway_options)
                          : gateway::Gateway::Start(gateway_options);
    ASSERT_TRUE(started.ok()) << started.status();
    gateway_ = *std::move(started);
  }

  void TearDown() override {
    gateway_.reset();
    server_.reset();
    if (echo_server_ != nullptr) echo_server_->Shutdown();
  }

  uint64_t Change(const std::string& id, const std::string& name) {
    const uint64_t version = backend_.Set(id, name);
    EXPECT_TRUE(Notify(server_->internal_port(), {id}).ok());
    return version;
  }

  absl::Duration max_connection_age_ = absl::ZeroDuration();
  absl::Duration write_stall_timeout_ = absl::Seconds(10);
  absl::Duration write_timeout_ = absl::Seconds(30);
  ItemsBackend backend_;
  EchoBackend echo_;
  std::unique_ptr<grpc::Server> echo_server_;
  std::unique_ptr<EntitySyncServer> server_;
  std::unique_ptr<gateway::Gateway> gateway_;
};

TEST_P(GatewayTest, EnvelopedClientGetsSnapshotThenChanges) {
  WsClient client(gateway_->port(), "entitysync.v1.json");
  client.Send(Subscribe("100", 7));
  std::optional<std::string> ack = client.Read();
  ASSERT_TRUE(ack.has_value());
  EXPECT_EQ(Json::parse(*ack)["request_id"], 7);
  std::optional<Json> snapshot = client.ReadUpdate("100", 0);
  ASSERT_TRUE(snapshot.has_value());
  EXPECT_EQ(snapshot->at("rows")[0]["json"]["name"], "Desk lamp");

  const uint64_t version = Change("100", "Reading lamp");
  std::optional<Json> update = client.ReadUpdate("100", version);
  ASSERT_TRUE(update.has_value());
  EXPECT_EQ(update->at("rows")[0]["json"]["name"], "Reading lamp");
}

TEST_P(GatewayTest, LegacyPassThroughCarriesTheSecretAndReturnsTheReply) {
  WsClient client(gateway_->port(), "");
  client.Send(R"({"action":"secret","body":"tok"})");
  const std::string message = R"({"action":"chat","body":{"text":"hi"}})";
  client.Send(message);
  std::optional<std::string> reply = client.Read();
  ASSERT_TRUE(reply.has_value());
  EXPECT_EQ(*reply, "echo:tok:" + message);
}

TEST_P(GatewayTest, AuthorizationGrpcCannotCarryIsRefusedWithoutHarm) {
  // gRPC aborts the process on metadata bytes outside printable ASCII.
  for (const std::string bad : {"a\tb", "p\xc3\xa4ss"}) {
    EXPECT_THROW(WsClient(gateway_->port(), "", absl::Seconds(10), bad),
                 boost::system::system_error);
  }
  WsClient client(gateway_->port(), "entitysync.v1.json", absl::Seconds(10),
                  "Bearer fine");
  client.Send(Subscribe("100", 1));
  EXPECT_TRUE(client.ReadUpdate("100", 0).has_value());
}

TEST_P(GatewayTest, SlowBrowserGetsTheNewestStateWhileOthersStayCurrent) {
  WsClient slow(gateway_->port(), "entitysync.v1.json");
  WsClient healthy(gateway_->port(), "entitysync.v1.json");
  slow.Send(Subscribe("100", 1));
  healthy.Send(Subscribe("100", 1));
  ASSERT_TRUE(healthy.ReadUpdate("100", 0).has_value());
  // The slow client reads nothing while 200 changes of 4 KB names happen.
  uint64_t last = 0;
  for (int i = 0; i < 200; ++i) {
    last = Change("100", absl::StrCat(i, std::string(4096, 'x')));
    if (i % 20 == 0) {
      ASSERT_TRUE(healthy.ReadUpdate("100", last).has_value()) << i;
    }
  }
  ASSERT_TRUE(healthy.ReadUpdate("100", last).has_value());
  // Then it catches up to the final state, skipping what was superseded.
  std::optional<Json> final_update = slow.ReadUpdate("100", last);
  ASSERT_TRUE(final_update.has_value());
  EXPECT_EQ(final_update->at("version").get<uint64_t>(), last);
  EXPECT_EQ(gateway_->connections(), 2u);
}

TEST_P(GatewayTest, DrainingReplicaClosesWithServiceRestart) {
  WsClient client(gateway_->port(), "");
  client.Send(R"({"action":"subscribe","body":{"entity":"items","id":"100"}})");
  ASSERT_TRUE(client.Read().has_value());  // the item's row, legacy mode
  std::thread drain([this] { server_->Drain(absl::Seconds(5)); });
  while (client.Read().has_value()) {
  }
  EXPECT_EQ(client.error(), websocket::error::closed);
  EXPECT_EQ(client.close_code(), 1012);
  drain.join();
}

TEST_P(GatewayTest, StopClosesEveryConnectionWithGoingAway) {
  std::vector<std::unique_ptr<WsClient>> clients;
  for (int i = 0; i < 40; ++i) {
    clients.push_back(std::make_unique<WsClient>(
        gateway_->port(), i % 2 == 0 ? "entitysync.v1.json" : ""));
    clients.back()->Send(Subscribe(absl::StrCat(100 + i % 3), i));
  }
  ASSERT_TRUE(clients.back()->Read().has_value());
  WaitFor([&] { return gateway_->connections() == 40; });
  // Browsers answer the close frame at once; these clients do so while
  // they read.
  std::thread stop([this] { gateway_->Stop(absl::Seconds(5)); });
  for (auto& client : clients) {
    while (client->Read().has_value()) {
    }
    EXPECT_EQ(client->close_code(), 1001);
  }
  stop.join();
  EXPECT_EQ(gateway_->connections(), 0u);
}

TEST_P(GatewayTest, StopDoesNotWaitForeverForClientsThatNeverAnswer) {
  std::vector<std::unique_ptr<WsClient>> clients;
  for (int i = 0; i < 5; ++i) {
    clients.push_back(
        std::make_unique<WsClient>(gateway_->port(), "entitysync.v1.json"));
    clients.back()->Send(Subscribe("100", i));
  }
  WaitFor([&] { return gateway_->connections() == 5; });
  // Nobody reads, so no close handshake completes: Stop gives up after the
  // grace and drops the connections.
  gateway_->Stop(absl::Milliseconds(300));
  for (auto& client : clients) {
    while (client->Read().has_value()) {
    }
    EXPECT_NE(client->error(), beast::error_code());
  }
}

// Browsers that leave while the gateway stops, then a change and the
// server's shutdown: every session still ends (none left in the hub with a
// dangling connection) and nothing touches the stopped gateway's threads
// afterwards; under ASan, a use-after-free check for hosted sessions that
// outlive their connection. (The narrowest race, a session's end queued on
// the strand just as the gateway stops its threads, is not forced here;
// LocalLink's destructor covers it.)
TEST_P(GatewayTest, SessionsEndWhenBrowsersLeaveAsTheGatewayStops) {
  std::vector<std::unique_ptr<WsClient>> clients;
  for (int i = 0; i < 30; ++i) {
    clients.push_back(
        std::make_unique<WsClient>(gateway_->port(), "entitysync.v1.json"));
    clients.back()->Send(Subscribe(absl::StrCat(100 + i % 2), i));
  }
  for (auto& client : clients) ASSERT_TRUE(client->Read().has_value());
  WaitFor([&] { return gateway_->connections() == 30; });
  // Half leave abruptly, racing the stop; the rest are cut off by it.
  for (int i = 0; i < 15; ++i) clients[i].reset();
  gateway_->Stop(absl::ZeroDuration());
  gateway_.reset();
  Change("100", "after the gateway");
  ASSERT_TRUE(WaitFor([&] { return server_->hub().subscription_count() == 0; }))
      << server_->hub().subscription_count() << " subscriptions left";
  server_->Shutdown(absl::Seconds(1));
}

// As gRPC streams are by --max_connection_age: the browser is told to
// reconnect (1012, after the frames it is owed) and its subscriptions go.
TEST_P(GatewayTest, ConnectionsOlderThanTheMaximumAgeCloseWithServiceRestart) {
  max_connection_age_ = absl::Milliseconds(300);
  Start(GetParam());
  WsClient client(gateway_->port(), "entitysync.v1.json");
  client.Send(Subscribe("100", 1));
  ASSERT_TRUE(client.ReadUpdate("100", 0).has_value());
  const absl::Time start = absl::Now();
  while (client.Read().has_value()) {
  }
  EXPECT_EQ(client.close_code(), 1012);
  EXPECT_LT(absl::Now() - start, absl::Seconds(3));
  EXPECT_TRUE(WaitFor([&] { return gateway_->connections() == 0; }));
}

// A browser that stops reading is a slow consumer like a gRPC client: once
// its socket is full the session's write stalls, and after
// --write_stall_timeout the service ends the stream and drops its
// subscriptions (hosted: the link cancels the write the connection holds).
TEST_P(GatewayTest, ABrowserThatStopsReadingIsCutOffAfterTheWriteStall) {
  write_stall_timeout_ = absl::Milliseconds(300);
  Start(GetParam());
  WsClient client(gateway_->port(), "entitysync.v1.json");
  // A small receive window, so that the server's socket fills sooner.
  int bytes = 4096;
  setsockopt(client.native_handle(), SOL_SOCKET, SO_RCVBUF, &bytes,
             sizeof(bytes));
  client.Send(Subscribe("100", 1));
  ASSERT_TRUE(client.ReadUpdate("100", 0).has_value());
  ASSERT_EQ(server_->hub().subscription_count(), 1u);
  // Then it reads nothing more, while 256 KB updates keep coming.
  const std::string big(256 << 10, 'x');
  bool dropped = false;
  for (int i = 0; i < 80 && !dropped; ++i) {
    Change("100", absl::StrCat(i, big));
    dropped = WaitFor([&] { return server_->hub().subscription_count() == 0; },
                      absl::Milliseconds(50));
  }
  if (!dropped) {
    dropped = WaitFor([&] { return server_->hub().subscription_count() == 0; });
  }
  EXPECT_TRUE(dropped) << "the stalled browser still holds its subscription";
}

// --gateway_write_timeout: a frame the browser does not take within it
// ends the connection, well before the service's own --write_stall_timeout.
TEST_P(GatewayTest, ABrowserThatTakesNoFrameIsCutOffAfterTheWriteTimeout) {
  write_timeout_ = absl::Milliseconds(500);
  Start(GetParam());
  WsClient stalled(gateway_->port(), "entitysync.v1.json");
  int bytes = 4096;
  setsockopt(stalled.native_handle(), SOL_SOCKET, SO_RCVBUF, &bytes,
             sizeof(bytes));
  stalled.Send(Subscribe("100", 1));
  ASSERT_TRUE(stalled.ReadUpdate("100", 0).has_value());
  ASSERT_EQ(gateway_->connections(), 1u);
  const absl::Time start = absl::Now();
  const std::string big(256 << 10, 'x');
  bool dropped = false;
  for (int i = 0; i < 40 && !dropped; ++i) {
    Change("100", absl::StrCat(i, big));
    dropped = WaitFor([&] { return gateway_->connections() == 0; },
                      absl::Milliseconds(100));
  }
  EXPECT_TRUE(dropped) << "the stalled browser is still connected";
  EXPECT_LT(absl::Now() - start, write_stall_timeout_);
}

// The timeout is per frame, not per connection: a browser that keeps taking
// frames, each in less than the timeout, stays for as long as they come.
// Here it reads slower than the changes come, so a frame is always being
// written to it, for three times the timeout. Hosted only: there the
// session conflates what waits, so each write is one frame (the standalone
// gateway may flush several frames that waited in the gRPC stream's window
// in one write, which a loaded machine can make take longer than this test
// allows; the timer is the same code).
TEST_P(GatewayTest, ABrowserThatReadsSlowlyButSteadilyOutlivesTheWriteTimeout) {
  if (!GetParam()) GTEST_SKIP() << "hosted gateway only (see above)";
  write_timeout_ = absl::Seconds(2);
  Start(GetParam());
  WsClient slow(gateway_->port(), "entitysync.v1.json");
  int bytes = 64 << 10;
  setsockopt(slow.native_handle(), SOL_SOCKET, SO_RCVBUF, &bytes,
             sizeof(bytes));
  slow.Send(Subscribe("100", 1));
  ASSERT_TRUE(slow.ReadUpdate("100", 0).has_value());
  // At most 3.2 MB/s, 16 KB at a time; the changes bring 5 MB/s.
  std::atomic<uint64_t> seen{0};
  std::atomic<uint64_t> last{UINT64_MAX};
  std::atomic<bool> failed{false};
  std::atomic<int> frames{0};
  std::thread reader([&] {
    beast::flat_buffer buffer;
    size_t unpaced = 0;  // bytes read since the last pause
    while (true) {
      const size_t before = buffer.size();
      std::optional<bool> done = slow.ReadSome(buffer, 16 << 10);
      if (!done.has_value()) {
        failed = true;
        return;
      }
      unpaced += buffer.size() - before;
      if (unpaced >= (16 << 10)) {
        unpaced = 0;
        absl::SleepFor(absl::Milliseconds(5));
      }
      if (!*done) continue;
      Json message =
          Json::parse(beast::buffers_to_string(buffer.data()), nullptr, false);
      buffer.consume(buffer.size());
      if (message.value("type", "") != "update") continue;
      ++frames;
      seen = message["version"].get<uint64_t>();
      if (seen >= last) return;
    }
  });
  const std::string big(256 << 10, 'x');
  const absl::Time start = absl::Now();
  for (int i = 0; absl::Now() - start < 3 * write_timeout_ && !failed; ++i) {
    Change("100", absl::StrCat(i, big));
    absl::SleepFor(absl::Milliseconds(50));
  }
  last = Change("100", "last");
  // The final state arrives; a socket read blocks whatever its timeout, so
  // a reader left waiting is woken by shutting the socket.
  if (!WaitFor([&] { return failed || seen >= last; }, absl::Seconds(20))) {
    shutdown(slow.native_handle(), SHUT_RDWR);
  }
  reader.join();
  EXPECT_FALSE(failed) << "cut off after " << frames << " frames, "
                       << absl::Now() - start << ": " << slow.error().message();
  EXPECT_EQ(seen.load(), last.load());
  EXPECT_EQ(gateway_->connections(), 1u);
}

TEST_P(GatewayTest, ServiceDownClosesWithTryAgainLater) {
  server_->Shutdown(absl::ZeroDuration());
  WsClient client(gateway_->port(), "entitysync.v1.json");
  while (client.Read().has_value()) {
  }
  EXPECT_EQ(client.close_code(), 1013);
}

// A timeout of "inf" (absl flag syntax) would overflow the deadlines: the
// gateway refuses to start rather than cut every connection off.
TEST(GatewayOptionsTest, InfiniteTimeoutsAreRefused) {
  for (absl::Duration gateway::GatewayOptions::*timeout :
       {&gateway::GatewayOptions::write_timeout,
        &gateway::GatewayOptions::idle_timeout,
        &gateway::GatewayOptions::request_timeout}) {
    gateway::GatewayOptions options;
    options.address = "127.0.0.1:0";
    options.*timeout = absl::InfiniteDuration();
    auto started = gateway::Gateway::Start(options);
    ASSERT_FALSE(started.ok());
    EXPECT_TRUE(absl::IsInvalidArgument(started.status())) << started.status();
    EXPECT_TRUE(absl::StrContains(started.status().message(), "finite"));
  }
}

INSTANTIATE_TEST_SUITE_P(Transports, GatewayTest, ::testing::Bool(),
                         [](const ::testing::TestParamInfo<bool>& info) {
                           return info.param ? "Hosted" : "Standalone";
                         });

}  // namespace
}  // namespace entitysync::testing
