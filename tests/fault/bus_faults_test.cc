// Faults between replicas and nats-server: two replicas on a real
// nats-server, replica 0 reaching it through FaultProxy. Clients sit on both
// replicas; every change is announced on replica 1, so replica 0 hears of it
// only through NATS. After each fault: every subscriber converges to the
// final state of every key (a replica that missed notices resyncs), versions
// never go backwards, and each replica holds exactly its clients' streams.
#include <atomic>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "adapters/bus/nats_bus.h"
#include "gtest/gtest.h"
#include "tests/e2e/e2e_harness.h"
#include "tests/fault/fault_client.h"
#include "tests/fault/fault_proxy.h"
#include "tests/testing/nats_server.h"
#include "tests/testing/wait.h"

namespace entitysync::testing {
namespace {

constexpr int kKeys = 6;
constexpr int kClientsPerReplica = 2;

class BusFaultsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    for (int k = 0; k < kKeys; ++k) final_[k] = backend_.Set(Id(k), "start");
    proxy_ = std::make_unique<FaultProxy>(nats_.port());
    for (int i = 0; i < 2; ++i) {
      ServerOptions options;
      options.config = ItemsConfig(backend_.target());
      options.public_address = "127.0.0.1:0";
      options.internal_address = "127.0.0.1:0";
      options.min_client_ping_interval = absl::Milliseconds(100);
      NatsBusOptions bus;
      bus.urls = {i == 0 ? absl::StrCat("nats://127.0.0.1:", proxy_->port())
                         : nats_.url()};
      bus.subject_prefix = prefix_;
      bus.reconnect_wait = absl::Milliseconds(100);
      bus.reconnect_jitter = absl::Milliseconds(50);
      bus.connect_timeout = absl::Milliseconds(500);
      // A dead link is noticed after about 400 ms.
      bus.ping_interval = absl::Milliseconds(200);
      bus.max_pings_out = 2;
      options.bus = NewNatsBus(bus);
      replicas_.push_back(StartServer(std::move(options)));
      ASSERT_NE(replicas_.back(), nullptr);
    }
    ASSERT_TRUE(WaitFor([&] { return Serving(0) && Serving(1); }));
    for (int i = 0; i < 2; ++i) {
      for (int c = 0; c < kClientsPerReplica; ++c) {
        clients_.push_back(std::make_unique<FaultClient>(
            std::vector<int>{replicas_[i]->public_port()}, kKeys));
      }
    }
    ASSERT_TRUE(Converged(absl::Seconds(10))) << "initial snapshots";
    writer_ = std::thread([this] { Write(); });
  }

  void TearDown() override {
    StopWriting();
    clients_.clear();
    replicas_.clear();
    proxy_.reset();
  }

  bool Serving(int i) {
    return HealthStatus(replicas_[i]->internal_port()) == 1;
  }

  // Changes every key in turn, about 100 a second, announced on replica 1.
  // A Notify may fail while replica 1's own link is down: the change is in
  // the database anyway, and a resync must bring it.
  void Write() {
    auto stub = v1::Notifier::NewStub(Channel(replicas_[1]->internal_port()));
    for (int n = 0; !stop_; ++n) {
      const int k = n % kKeys;
      const uint64_t v = backend_.Set(Id(k), absl::StrCat("change ", n));
      {
        absl::MutexLock lock(&mu_);
        final_[k] = v;
      }
      v1::NotifyRequest request;
      v1::Change* change = request.add_changes();
      change->mutable_key()->set_entity("items");
      change->mutable_key()->set_id(Id(k));
      change->set_version(v);
      v1::NotifyResponse response;
      grpc::ClientContext context;
      context.set_deadline(absl::ToChronoTime(absl::Now() + absl::Seconds(2)));
      (void)stub->Notify(&context, request, &response);
      absl::SleepFor(absl::Milliseconds(10));
    }
  }
  void StopWriting() {
    stop_ = true;
    if (writer_.joinable()) writer_.join();
  }

  bool Converged(absl::Duration timeout) {
    return WaitFor(
        [&] {
          absl::MutexLock lock(&mu_);
          for (const auto& c : clients_) {
            for (int k = 0; k < kKeys; ++k) {
              if (c->last(k) != final_[k]) return false;
            }
          }
          return true;
        },
        timeout);
  }

  void ExpectRecovered() {
    StopWriting();
    EXPECT_TRUE(
        WaitFor([&] { return Serving(0) && Serving(1); }, absl::Seconds(10)))
        << "both replicas SERVING again";
    EXPECT_TRUE(Converged(absl::Seconds(15)))
        << "not every subscriber reached the final state";
    for (const auto& c : clients_) {
      for (int k = 0; k < kKeys; ++k) {
        std::string why;
        EXPECT_TRUE(c->Monotonic(k, &why)) << why;
      }
    }
    for (const auto& r : replicas_) {
      EXPECT_EQ(r->stream_count(), static_cast<size_t>(kClientsPerReplica));
      EXPECT_EQ(r->hub().subscription_count(),
                static_cast<size_t>(kClientsPerReplica * kKeys));
    }
  }

  NatsServer nats_;
  const std::string prefix_ = absl::StrCat("fault", getpid());
  ItemsBackend backend_;
  std::unique_ptr<FaultProxy> proxy_;
  std::vector<std::unique_ptr<EntitySyncServer>> replicas_;
  std::vector<std::unique_ptr<FaultClient>> clients_;
  std::thread writer_;
  std::atomic<bool> stop_{false};
  absl::Mutex mu_;
  uint64_t final_[kKeys] ABSL_GUARDED_BY(mu_) = {};
};

TEST_F(BusFaultsTest, LinkBlackHoledLongerThanThePingBudget) {
  absl::SleepFor(absl::Milliseconds(300));
  proxy_->BlackHole();
  EXPECT_TRUE(WaitFor([&] { return !Serving(0); }, absl::Seconds(5)))
      << "replica 0 noticed it lost the bus (NOT_SERVING)";
  absl::SleepFor(absl::Milliseconds(500));
  proxy_->Pass();
  ExpectRecovered();
}

TEST_F(BusFaultsTest, LinkResetRepeatedly) {
  for (int i = 0; i < 3; ++i) {
    absl::SleepFor(absl::Milliseconds(300));
    proxy_->Reset();
  }
  ExpectRecovered();
}

TEST_F(BusFaultsTest, LinkDelayed) {
  proxy_->Delay(absl::Milliseconds(40));
  absl::SleepFor(absl::Seconds(1));
  proxy_->Pass();
  ExpectRecovered();
}

TEST_F(BusFaultsTest, NatsServerStoppedLongerThanThePingBudget) {
  absl::SleepFor(absl::Milliseconds(300));
  nats_.Pause();  // SIGSTOP: connections stay open, nothing answers
  EXPECT_TRUE(
      WaitFor([&] { return !Serving(0) && !Serving(1); }, absl::Seconds(5)))
      << "both replicas noticed the partition";
  absl::SleepFor(absl::Milliseconds(500));
  nats_.Resume();
  ExpectRecovered();
}

}  // namespace
}  // namespace entitysync::testing
