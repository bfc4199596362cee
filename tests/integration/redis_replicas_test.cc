// Two stateless replicas sharing one real redis-server through the Redis bus
// (--bus=redis). Each replica has its own resolver backend over one shared
// SQLite file, so resolver calls can be counted per replica.
#include <cstdlib>
#include <fstream>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "adapters/bus/redis_bus.h"
#include "tests/e2e/e2e_harness.h"
#include "tests/testing/redis_server.h"
#include "tests/testing/subprocess.h"

namespace entitysync::testing {
namespace {

class RedisReplicasTest : public ::testing::Test {
 protected:
  void StartReplicas(int n) {
    for (int i = 0; i < n; ++i) {
      backends_.push_back(
          std::make_unique<ItemsBackend>(absl::ZeroDuration(), db_));
      ServerOptions options;
      options.config = ItemsConfig(backends_[i]->target());
      options.public_address = "127.0.0.1:0";
      options.internal_address = "127.0.0.1:0";
      RedisBusOptions bus;
      bus.addresses = {redis_->address()};
      bus.channel_prefix = prefix_;
      bus.reconnect_wait = absl::Milliseconds(100);
      bus.reconnect_jitter = absl::Milliseconds(50);
      options.bus = NewRedisBus(bus);
      replicas_.push_back(StartServer(std::move(options)));
    }
  }

  ItemsBackend& backend(int i) { return *backends_[i]; }
  int pub(int i) { return replicas_[i]->public_port(); }
  int internal(int i) { return replicas_[i]->internal_port(); }

  bool AllServing() {
    for (auto& r : replicas_) {
      if (HealthStatus(r->internal_port()) != 1) return false;
    }
    return true;
  }

  std::unique_ptr<RedisServer> redis_ = std::make_unique<RedisServer>();
  const std::string db_ = TempPath("shared.db");
  const std::string prefix_ = absl::StrCat("es", getpid());
  std::vector<std::unique_ptr<ItemsBackend>> backends_;
  std::vector<std::unique_ptr<EntitySyncServer>> replicas_;
};

TEST_F(RedisReplicasTest, ChangeNotifiedToOneReplicaReachesTheOther) {
  StartReplicas(2);
  ASSERT_TRUE(WaitFor([&] { return AllServing(); }));
  backend(0).Set("100", "Lamp");
  // Three subscribers of the key on replica B (1); none on A.
  std::vector<std::unique_ptr<RawStream>> subs;
  for (int i = 0; i < 3; ++i) {
    subs.push_back(std::make_unique<RawStream>(pub(1)));
    ASSERT_TRUE(
        subs.back()->AwaitSubscribed(subs.back()->Subscribe("items", "100")));
    ASSERT_TRUE(subs.back()->AwaitUpdate("100"));
  }
  absl::SleepFor(absl::Milliseconds(100));  // Let Redis take the SUBSCRIBE.
  const uint64_t a0 = backend(0).calls(), b0 = backend(1).calls();
  for (int change = 1; change <= 3; ++change) {
    const uint64_t v = backend(0).Set("100", absl::StrCat("Lamp v", change));
    ASSERT_TRUE(Notify(internal(0), {"100"}).ok());  // Sent to replica A.
    for (auto& s : subs) {
      auto u = s->AwaitUpdate("100", v);
      ASSERT_TRUE(u) << "change " << change;
      EXPECT_TRUE(
          absl::StrContains(u->rows(0).data(), absl::StrCat("Lamp v", change)));
    }
  }
  EXPECT_EQ(backend(1).calls() - b0, 3u)
      << "replica B resolves once per change for its three subscribers";
  EXPECT_EQ(backend(0).calls() - a0, 0u) << "replica A has no subscribers";
}

// Redis pub/sub loses whatever is published while a replica is away; the
// resync after the reconnect repairs it without any further Notify.
TEST_F(RedisReplicasTest, RedisRestartIsRepairedByResync) {
  StartReplicas(2);
  ASSERT_TRUE(WaitFor([&] { return AllServing(); }));
  const int kKeys = 3;
  for (int k = 0; k < kKeys; ++k) backend(0).Set(std::to_string(k), "before");
  RawStream s(pub(1));
  for (int k = 0; k < kKeys; ++k) {
    ASSERT_TRUE(s.AwaitSubscribed(s.Subscribe("items", std::to_string(k))));
    ASSERT_TRUE(s.AwaitUpdate(std::to_string(k)));
  }

  redis_->Kill();
  ASSERT_TRUE(WaitFor([&] {
    return HealthStatus(internal(0)) == 2 && HealthStatus(internal(1)) == 2;
  })) << "NOT_SERVING while the bus is down";
  std::vector<uint64_t> versions;
  for (int k = 0; k < kKeys; ++k) {
    versions.push_back(
        backend(0).Set(std::to_string(k), "changed during the outage"));
  }
  EXPECT_EQ(Notify(internal(0), {"0", "1", "2"}).error_code(),
            grpc::StatusCode::UNAVAILABLE)
      << "never OK for a notice that was not published";

  redis_->Start();
  ASSERT_TRUE(WaitFor([&] { return AllServing(); }, absl::Seconds(15)))
      << "SERVING again after the bus reconnects";
  for (int k = 0; k < kKeys; ++k) {
    auto u = s.AwaitUpdate(std::to_string(k), versions[k], absl::Seconds(15));
    ASSERT_TRUE(u) << "key " << k << " converges by resync alone";
    EXPECT_TRUE(absl::StrContains(u->rows(0).data(), "during the outage"));
  }
  // And the bus works again for new changes.
  const uint64_t v = backend(0).Set("0", "after");
  ASSERT_TRUE(Notify(internal(0), {"0"}).ok());
  ASSERT_TRUE(s.AwaitUpdate("0", v));
}

// The real binary: --bus=redis with its flags, and the password from the
// environment only, which never appears in the replica's log.
TEST_F(RedisReplicasTest, ServerBinaryWithBusRedisAndPasswordFromEnvironment) {
  const std::string password = "pw-from-env-7d1";
  RedisServer::Options with_password;
  with_password.password = password;
  redis_ = std::make_unique<RedisServer>(with_password);
  backends_.push_back(
      std::make_unique<ItemsBackend>(absl::ZeroDuration(), db_));
  const std::string config = TempPath("config.textproto");
  {
    std::ofstream out(config);
    out << "entities { name: \"items\" resolver { target: \""
        << backend(0).target() << "\" } }\n";
  }
  const char* srcdir = std::getenv("TEST_SRCDIR");
  const std::string binary = absl::StrCat(
      srcdir ? srcdir : "..", "/entitysync/server/entitysync-server");
  std::vector<int> public_ports, internal_ports;
  std::vector<std::unique_ptr<Subprocess>> processes;
  // Replicas 0 and 1 get the password; replica 2 none, so it stays unready.
  for (int i = 0; i < 3; ++i) {
    if (i < 2) {
      setenv("ENTITYSYNC_REDIS_PASSWORD", password.c_str(), 1);
    } else {
      unsetenv("ENTITYSYNC_REDIS_PASSWORD");
    }
    public_ports.push_back(FreePort());
    internal_ports.push_back(FreePort());
    processes.push_back(std::make_unique<Subprocess>(
        std::vector<std::string>{
            binary, "--bus=redis",
            absl::StrCat("--redis_address=", redis_->address()),
            absl::StrCat("--redis_channel_prefix=", prefix_),
            absl::StrCat("--config=", config),
            absl::StrCat("--public_address=127.0.0.1:", public_ports[i]),
            absl::StrCat("--internal_address=127.0.0.1:", internal_ports[i]),
            "--metrics_address=127.0.0.1:0"},
        TempPath(absl::StrCat("replica", i, ".log"))));
    ASSERT_TRUE(WaitForPort(internal_ports[i], absl::Seconds(10)))
        << processes[i]->Log();
  }
  unsetenv("ENTITYSYNC_REDIS_PASSWORD");
  ASSERT_TRUE(WaitFor([&] {
    return HealthStatus(internal_ports[0]) == 1 &&
           HealthStatus(internal_ports[1]) == 1;
  })) << processes[0]->Log();
  EXPECT_EQ(HealthStatus(internal_ports[2]), 2)
      << "without the password the bus never connects";
  EXPECT_EQ(Notify(internal_ports[2], {"100"}).error_code(),
            grpc::StatusCode::UNAVAILABLE);

  backend(0).Set("100", "before");
  RecordingClient client({public_ports[1]}, {"items", "100"});
  ASSERT_TRUE(client.AwaitRowContaining("before"));
  absl::SleepFor(absl::Milliseconds(100));
  backend(0).Set("100", "after");
  ASSERT_TRUE(Notify(internal_ports[0], {"100"}).ok());
  EXPECT_TRUE(client.AwaitRowContaining("after"));

  for (auto& process : processes) process->Terminate();
  for (auto& process : processes) process->Wait(absl::Seconds(15));
  EXPECT_TRUE(absl::StrContains(processes[2]->Log(), "NOAUTH"))
      << "the unready replica says why: " << processes[2]->Log();
  for (auto& process : processes) {
    EXPECT_FALSE(absl::StrContains(process->Log(), password)) << process->Log();
  }
}

}  // namespace
}  // namespace entitysync::testing
