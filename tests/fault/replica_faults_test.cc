// Replica-level faults with changes flowing: a replica drained (what SIGTERM
// does) while 1,000 streams hang on it, and connections expiring at their
// maximum age over and over. Two replicas on a real nats-server; the real
// client library on every stream. Afterwards: every client has moved or
// reconnected, converged to the final state, never seen a version go
// backwards, and the replicas hold exactly the streams of the clients.
#include <sys/resource.h>

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
#include "tests/testing/nats_server.h"
#include "tests/testing/wait.h"

namespace entitysync::testing {
namespace {

constexpr int kKeys = 2;

class ReplicaFaultsTest : public ::testing::Test {
 protected:
  void StartReplicas(absl::Duration max_connection_age) {
    for (int k = 0; k < kKeys; ++k) final_[k] = backend_.Set(Id(k), "start");
    for (int i = 0; i < 2; ++i) {
      ServerOptions options;
      options.config = ItemsConfig(backend_.target());
      options.public_address = "127.0.0.1:0";
      options.internal_address = "127.0.0.1:0";
      options.min_client_ping_interval = absl::Milliseconds(100);
      options.goaway_reconnect_within = absl::Seconds(1);
      options.max_connection_age = max_connection_age;
      options.max_connection_age_grace = absl::Milliseconds(300);
      NatsBusOptions bus;
      bus.urls = {nats_.url()};
      bus.subject_prefix = prefix_;
      options.bus = NewNatsBus(bus);
      replicas_.push_back(StartServer(std::move(options)));
      ASSERT_NE(replicas_.back(), nullptr);
    }
    ASSERT_TRUE(WaitFor([&] {
      return HealthStatus(replicas_[0]->internal_port()) == 1 &&
             HealthStatus(replicas_[1]->internal_port()) == 1;
    }));
  }
  void AddClients(int n, std::vector<int> targets, bool quick = true) {
    for (int i = 0; i < n; ++i) {
      clients_.push_back(std::make_unique<FaultClient>(targets, kKeys, quick));
    }
  }
  void StartWriting(int notify_replica) {
    writer_ = std::thread([this, notify_replica] {
      auto stub = v1::Notifier::NewStub(
          Channel(replicas_[notify_replica]->internal_port()));
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
        (void)stub->Notify(&context, request, &response);
        absl::SleepFor(absl::Milliseconds(20));
      }
    });
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
  void ExpectMonotonic() {
    for (const auto& c : clients_) {
      for (int k = 0; k < kKeys; ++k) {
        std::string why;
        EXPECT_TRUE(c->Monotonic(k, &why)) << why;
      }
    }
  }
  void TearDown() override {
    StopWriting();
    clients_.clear();
    replicas_.clear();
  }

  NatsServer nats_;
  const std::string prefix_ = absl::StrCat("replicafault", getpid());
  ItemsBackend backend_;
  std::vector<std::unique_ptr<EntitySyncServer>> replicas_;
  std::vector<std::unique_ptr<FaultClient>> clients_;
  std::thread writer_;
  std::atomic<bool> stop_{false};
  absl::Mutex mu_;
  uint64_t final_[kKeys] ABSL_GUARDED_BY(mu_) = {};
};

TEST_F(ReplicaFaultsTest, DrainWithAThousandStreamsMovesEveryClient) {
  // Clients and replicas share this process: two sockets per stream, and
  // more while clients move. The test runner's soft limit may be 1,024.
  rlimit files{};
  ASSERT_EQ(getrlimit(RLIMIT_NOFILE, &files), 0);
  files.rlim_cur = files.rlim_max;
  ASSERT_EQ(setrlimit(RLIMIT_NOFILE, &files), 0);
  ASSERT_GE(files.rlim_cur, 8192u) << "needs 8,192 file descriptors";
  StartReplicas(absl::Minutes(30));
  const int kClients = 1000;
  // Every client tries replica 0 first, so all of them start there.
  // The library's default timeouts: a thousand clients connecting at once
  // take longer than a second each, and pinging every 200 ms would swamp
  // the 2 cores.
  AddClients(kClients,
             {replicas_[0]->public_port(), replicas_[1]->public_port()},
             /*quick=*/false);
  ASSERT_TRUE(WaitFor([&] { return replicas_[0]->stream_count() == kClients; },
                      absl::Seconds(60)))
      << replicas_[0]->stream_count() << " streams on replica 0, "
      << replicas_[1]->stream_count() << " on replica 1";
  ASSERT_TRUE(Converged(absl::Seconds(30))) << "initial snapshots";
  StartWriting(/*notify_replica=*/1);
  absl::SleepFor(absl::Milliseconds(300));
  const absl::Time started = absl::Now();
  replicas_[0]->Drain(absl::Seconds(30));  // what SIGTERM runs
  const absl::Duration took = absl::Now() - started;
  EXPECT_LT(took, absl::Seconds(15))
      << "the drain ends when the clients have moved, well before the grace";
  EXPECT_TRUE(WaitFor([&] { return replicas_[1]->stream_count() == kClients; },
                      absl::Seconds(30)))
      << replicas_[1]->stream_count() << " of " << kClients
      << " clients on replica 1";
  StopWriting();
  EXPECT_TRUE(Converged(absl::Seconds(30)))
      << "not every client converged after moving";
  ExpectMonotonic();
}

TEST_F(ReplicaFaultsTest, ConnectionsExpiringAtTheirMaximumAgeUnderLoad) {
  StartReplicas(/*max_connection_age=*/absl::Milliseconds(800));
  const int kClients = 20;
  for (int i = 0; i < kClients; ++i) {
    AddClients(1, i % 2 == 0 ? std::vector<int>{replicas_[0]->public_port(),
                                                replicas_[1]->public_port()}
                             : std::vector<int>{replicas_[1]->public_port(),
                                                replicas_[0]->public_port()});
  }
  ASSERT_TRUE(Converged(absl::Seconds(10)));
  StartWriting(/*notify_replica=*/0);
  absl::SleepFor(absl::Seconds(4));  // about five generations of connections
  StopWriting();
  EXPECT_TRUE(Converged(absl::Seconds(15)));
  ExpectMonotonic();
  EXPECT_TRUE(WaitFor([&] {
    return replicas_[0]->stream_count() + replicas_[1]->stream_count() ==
           static_cast<size_t>(kClients);
  })) << "streams left behind by expired connections";
}

}  // namespace
}  // namespace entitysync::testing
