// Several stateless replicas sharing one real nats-server. Each replica has
// its own resolver backend over one shared SQLite file, so resolver calls can
// be counted per replica.
#include <fstream>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "adapters/bus/nats_bus.h"
#include "client/subscriber.h"
#include "tests/e2e/e2e_harness.h"
#include "tests/testing/nats_server.h"
#include "tests/testing/subprocess.h"

namespace entitysync::testing {
namespace {

class ReplicasTest : public ::testing::Test {
 protected:
  // Starts `n` replicas, each with its own resolver on the shared database.
  void StartReplicas(
      int n, absl::Duration resolver_delay = absl::ZeroDuration(),
      v1::EntityConfig::ResolveMode mode = v1::EntityConfig::PER_REPLICA) {
    for (int i = 0; i < n; ++i) {
      backends_.push_back(std::make_unique<ItemsBackend>(resolver_delay, db_));
      replicas_.push_back(StartReplica(i, mode));
    }
  }

  std::unique_ptr<EntitySyncServer> StartReplica(
      int i,
      v1::EntityConfig::ResolveMode mode = v1::EntityConfig::PER_REPLICA) {
    ServerOptions options;
    options.config = ItemsConfig(backends_[i]->target());
    options.config.mutable_entities(0)->set_resolve_mode(mode);
    options.public_address = "127.0.0.1:0";
    options.internal_address = "127.0.0.1:0";
    NatsBusOptions bus;
    bus.urls = {nats_->url()};
    bus.subject_prefix = prefix_;
    bus.reconnect_wait = absl::Milliseconds(100);
    bus.reconnect_jitter = absl::Milliseconds(50);
    options.bus = NewNatsBus(bus);
    return StartServer(std::move(options));
  }

  EntitySyncServer& replica(int i) { return *replicas_[i]; }
  ItemsBackend& backend(int i) { return *backends_[i]; }
  int pub(int i) { return replicas_[i]->public_port(); }
  int internal(int i) { return replicas_[i]->internal_port(); }

  bool AllServing() {
    for (auto& r : replicas_) {
      if (HealthStatus(r->internal_port()) != 1) return false;
    }
    return true;
  }

  std::unique_ptr<NatsServer> nats_ = std::make_unique<NatsServer>();
  const std::string db_ = TempPath("shared.db");
  const std::string prefix_ = absl::StrCat("es", getpid());
  std::vector<std::unique_ptr<ItemsBackend>> backends_;
  std::vector<std::unique_ptr<EntitySyncServer>> replicas_;
};

TEST_F(ReplicasTest,
       ChangeReachesOtherReplicaAndOnlyReplicasWithSubscribersResolve) {
  StartReplicas(3);
  ASSERT_TRUE(WaitFor([&] { return AllServing(); }));
  backend(0).Set("100", "Lamp");
  // Three subscribers of the key on replica B (1); none anywhere else.
  std::vector<std::unique_ptr<RawStream>> subs;
  for (int i = 0; i < 3; ++i) {
    subs.push_back(std::make_unique<RawStream>(pub(1)));
    ASSERT_TRUE(
        subs.back()->AwaitSubscribed(subs.back()->Subscribe("items", "100")));
    ASSERT_TRUE(subs.back()->AwaitUpdate("100"));
  }
  absl::SleepFor(absl::Milliseconds(100));  // Let NATS propagate the SUB.
  const uint64_t a0 = backend(0).calls(), b0 = backend(1).calls(),
                 c0 = backend(2).calls();
  for (int change = 1; change <= 3; ++change) {
    const uint64_t v = backend(0).Set("100", absl::StrCat("Lamp v", change));
    ASSERT_TRUE(Notify(internal(0), {"100"}).ok());  // Sent to replica A.
    for (auto& s : subs) ASSERT_TRUE(s->AwaitUpdate("100", v));
  }
  EXPECT_EQ(backend(1).calls() - b0, 3u)
      << "replica B resolves once per change for its three subscribers";
  EXPECT_EQ(backend(0).calls() - a0, 0u) << "replica A has no subscribers";
  EXPECT_EQ(backend(2).calls() - c0, 0u) << "replica C has no subscribers";
}

// cluster_once: the replica that takes the Notify resolves once and
// publishes the rows; replicas with subscribers push them without a call.
TEST_F(ReplicasTest, ClusterOnceResolvesEachChangeOnceForAllReplicas) {
  StartReplicas(3, absl::ZeroDuration(), v1::EntityConfig::CLUSTER_ONCE);
  ASSERT_TRUE(WaitFor([&] { return AllServing(); }));
  backend(0).Set("100", "Lamp");
  std::vector<std::unique_ptr<RawStream>> subs;  // two on every replica
  for (int r = 0; r < 3; ++r) {
    for (int i = 0; i < 2; ++i) {
      subs.push_back(std::make_unique<RawStream>(pub(r)));
      ASSERT_TRUE(
          subs.back()->AwaitSubscribed(subs.back()->Subscribe("items", "100")));
      ASSERT_TRUE(subs.back()->AwaitUpdate("100"));
    }
  }
  absl::SleepFor(absl::Milliseconds(100));  // Let NATS propagate the SUBs.
  const uint64_t a0 = backend(0).calls(), b0 = backend(1).calls(),
                 c0 = backend(2).calls();
  for (int change = 1; change <= 3; ++change) {
    const uint64_t v = backend(0).Set("100", absl::StrCat("Lamp v", change));
    ASSERT_TRUE(Notify(internal(0), {"100"}).ok());
    for (auto& s : subs) ASSERT_TRUE(s->AwaitUpdate("100", v));
  }
  EXPECT_EQ(backend(0).calls() - a0, 3u) << "one call per change, by A";
  EXPECT_EQ(backend(1).calls() - b0, 0u) << "B pushes A's rows";
  EXPECT_EQ(backend(2).calls() - c0, 0u) << "C pushes A's rows";
  // The rows reached the subscribers as the resolver returned them.
  const std::vector<v1::Update> last = subs.back()->Updates("100");
  ASSERT_FALSE(last.empty());
  ASSERT_GT(last.back().rows_size(), 0);
  EXPECT_TRUE(absl::StrContains(last.back().rows(0).data(), "Lamp v3"));

  // A Notify to C: C resolves.
  const uint64_t v = backend(0).Set("100", "Lamp v4");
  ASSERT_TRUE(Notify(internal(2), {"100"}).ok());
  for (auto& s : subs) ASSERT_TRUE(s->AwaitUpdate("100", v));
  EXPECT_EQ(backend(2).calls() - c0, 1u);
  EXPECT_EQ(backend(1).calls() - b0, 0u);
}

TEST_F(ReplicasTest, ClusterOnceCoalescesABurstOnOneKey) {
  StartReplicas(2, absl::Milliseconds(300), v1::EntityConfig::CLUSTER_ONCE);
  ASSERT_TRUE(WaitFor([&] { return AllServing(); }));
  backend(0).Set("7", "start");
  RawStream a(pub(0)), b(pub(1));
  for (RawStream* s : {&a, &b}) {
    ASSERT_TRUE(s->AwaitSubscribed(s->Subscribe("items", "7")));
    ASSERT_TRUE(s->AwaitUpdate("7"));
  }
  absl::SleepFor(absl::Milliseconds(100));
  const uint64_t a0 = backend(0).calls(), b0 = backend(1).calls();
  // 20 changes and their Notify calls at once, while one resolve is slow.
  std::vector<std::thread> notifiers;
  uint64_t last = 0;
  for (int i = 0; i < 20; ++i) last = backend(0).Set("7", absl::StrCat(i));
  for (int i = 0; i < 20; ++i) {
    notifiers.emplace_back(
        [&] { EXPECT_TRUE(Notify(internal(0), {"7"}).ok()); });
  }
  for (std::thread& t : notifiers) t.join();
  for (RawStream* s : {&a, &b}) ASSERT_TRUE(s->AwaitUpdate("7", last));
  EXPECT_LE(backend(0).calls() - a0, 2u)
      << "one resolve in flight, one follow-up for everything that came later";
  EXPECT_EQ(backend(1).calls() - b0, 0u);
}

TEST_F(ReplicasTest, ClusterOncePassesTheNoticeOnWhenItCannotResolve) {
  StartReplicas(2, absl::ZeroDuration(), v1::EntityConfig::CLUSTER_ONCE);
  ASSERT_TRUE(WaitFor([&] { return AllServing(); }));
  backend(1).Set("5", "start");
  RawStream s(pub(1));
  ASSERT_TRUE(s.AwaitSubscribed(s.Subscribe("items", "5")));
  ASSERT_TRUE(s.AwaitUpdate("5"));
  absl::SleepFor(absl::Milliseconds(100));
  backends_[0].reset();  // A's resolver is gone.
  const uint64_t v = backend(1).Set("5", "changed");
  ASSERT_TRUE(Notify(internal(0), {"5"}).ok())
      << "the change is published all the same";
  ASSERT_TRUE(s.AwaitUpdate("5", v)) << "B resolves it itself";
}

TEST_F(ReplicasTest, UnusualIdsRouteOnlyToTheirOwnKey) {
  StartReplicas(2);
  ASSERT_TRUE(WaitFor([&] { return AllServing(); }));
  const std::vector<std::string> ids = {
      "with space",         "a.b", "a", "b", "*x", ">", "a.>", "ünïcødé ✓",
      std::string(512, 'z')};
  for (const auto& id : ids) backend(0).Set(id, "initial");
  RawStream s(pub(1));
  for (const auto& id : ids) {
    ASSERT_TRUE(s.AwaitSubscribed(s.Subscribe("items", id))) << id;
    ASSERT_TRUE(s.AwaitUpdate(id)) << id;
  }
  absl::SleepFor(absl::Milliseconds(100));
  for (const std::string& changed : std::vector<std::string>{
           "a.b", "with space", ">", std::string(512, 'z')}) {
    const uint64_t v =
        backend(0).Set(changed, "changed " + changed.substr(0, 8));
    ASSERT_TRUE(Notify(internal(0), {changed}).ok());
    ASSERT_TRUE(s.AwaitUpdate(changed, v)) << changed;
  }
  absl::SleepFor(absl::Milliseconds(200));
  for (const std::string& untouched :
       std::vector<std::string>{"a", "b", "*x", "a.>", "ünïcødé ✓"}) {
    EXPECT_EQ(s.Updates(untouched).size(), 1u)
        << "only the snapshot for " << untouched;
  }
}

TEST_F(ReplicasTest, NatsRestartDuringChangesConverges) {
  StartReplicas(2);
  ASSERT_TRUE(WaitFor([&] { return AllServing(); }));
  const int kKeys = 5;
  for (int k = 0; k < kKeys; ++k) backend(0).Set(std::to_string(k), "start");
  RawStream s(pub(1));
  for (int k = 0; k < kKeys; ++k) {
    ASSERT_TRUE(s.AwaitSubscribed(s.Subscribe("items", std::to_string(k))));
  }
  std::vector<uint64_t> final_version(kKeys);
  std::vector<std::string> ids;
  for (int k = 0; k < kKeys; ++k) ids.push_back(std::to_string(k));
  auto change_all = [&](const std::string& tag) {
    for (int k = 0; k < kKeys; ++k) {
      final_version[k] = backend(0).Set(std::to_string(k), tag);
    }
    return Notify(internal(0), ids);
  };
  ASSERT_TRUE(change_all("before").ok());

  nats_->Kill();
  ASSERT_TRUE(WaitFor([&] { return HealthStatus(internal(1)) == 2; }))
      << "NOT_SERVING while the bus is down";
  grpc::Status during = change_all("during");
  EXPECT_EQ(during.error_code(), grpc::StatusCode::UNAVAILABLE)
      << "never OK for a notice that was not published";
  change_all("during 2");  // More changes nobody can announce.

  nats_->Start();
  ASSERT_TRUE(WaitFor([&] { return AllServing(); }, absl::Seconds(15)))
      << "SERVING again after the bus reconnects";
  ASSERT_TRUE(change_all("after").ok());
  for (int k = 0; k < kKeys; ++k) {
    auto u = s.AwaitUpdate(std::to_string(k), final_version[k]);
    ASSERT_TRUE(u) << "key " << k << " converges";
    EXPECT_TRUE(absl::StrContains(u->rows(0).data(), "after"));
  }
  for (int k = 0; k < kKeys; ++k) {
    auto updates = s.Updates(std::to_string(k));
    for (size_t i = 1; i < updates.size(); ++i) {
      EXPECT_GT(updates[i].version(), updates[i - 1].version());
    }
  }
}

TEST_F(ReplicasTest, OutageChangesAreRepairedByResyncWithoutAnyNotify) {
  StartReplicas(1);
  ASSERT_TRUE(WaitFor([&] { return AllServing(); }));
  backend(0).Set("1", "before");
  RawStream s(pub(0));
  ASSERT_TRUE(s.AwaitSubscribed(s.Subscribe("items", "1")));
  nats_->Kill();
  ASSERT_TRUE(WaitFor([&] { return HealthStatus(internal(0)) == 2; }));
  const uint64_t v = backend(0).Set("1", "changed during the outage");
  nats_->Start();
  // No Notify after the outage: the reconnect resync alone must deliver it.
  auto u = s.AwaitUpdate("1", v, absl::Seconds(15));
  ASSERT_TRUE(u);
  EXPECT_TRUE(absl::StrContains(u->rows(0).data(), "during the outage"));
}

TEST_F(ReplicasTest, NatsDownAtStartupThenServing) {
  nats_ = std::make_unique<NatsServer>(/*started=*/false);
  StartReplicas(2);
  EXPECT_EQ(HealthStatus(internal(0)), 2) << "NOT_SERVING without a bus";
  EXPECT_EQ(HealthStatus(internal(0), std::string(kLivenessService)), 1)
      << "alive all the same: a NATS outage must not restart every replica";
  EXPECT_EQ(Notify(internal(0), {"1"}).error_code(),
            grpc::StatusCode::UNAVAILABLE);
  nats_->Start();
  ASSERT_TRUE(WaitFor([&] { return AllServing(); }, absl::Seconds(15)));
  backend(0).Set("1", "one");
  RawStream s(pub(1));
  ASSERT_TRUE(s.AwaitSubscribed(s.Subscribe("items", "1")));
  absl::SleepFor(absl::Milliseconds(100));
  const uint64_t v = backend(0).Set("1", "two");
  ASSERT_TRUE(Notify(internal(0), {"1"}).ok());
  ASSERT_TRUE(s.AwaitUpdate("1", v));
}

TEST_F(ReplicasTest, DuplicateAndReorderedNoticesNeverGoBackwards) {
  StartReplicas(2);
  ASSERT_TRUE(WaitFor([&] { return AllServing(); }));
  RawStream s(pub(1));
  ASSERT_TRUE(s.AwaitSubscribed(s.Subscribe("items", "r")));
  absl::SleepFor(absl::Milliseconds(100));
  auto stub = v1::Notifier::NewStub(Channel(internal(0)));
  for (uint64_t version : {3, 1, 2, 3, 5, 4, 5, 2}) {
    v1::NotifyRequest request;
    v1::Change* change = request.add_changes();
    change->mutable_key()->set_entity("items");
    change->mutable_key()->set_id("r");
    change->set_version(version);
    change->mutable_rows()->add_rows()->set_data(absl::StrCat("v", version));
    v1::NotifyResponse response;
    grpc::ClientContext context;
    ASSERT_TRUE(stub->Notify(&context, request, &response).ok());
  }
  auto last = s.AwaitUpdate("r", 5);
  ASSERT_TRUE(last);
  EXPECT_EQ(last->rows(0).data(), "v5");
  absl::SleepFor(absl::Milliseconds(200));
  auto updates = s.Updates("r");
  ASSERT_FALSE(updates.empty());
  for (size_t i = 1; i < updates.size(); ++i) {
    EXPECT_GT(updates[i].version(), updates[i - 1].version());
  }
  EXPECT_EQ(updates.back().version(), 5u);
}

TEST_F(ReplicasTest, DrainingReplicaHandsItsClientsToAnother) {
  StartReplicas(2);
  ASSERT_TRUE(WaitFor([&] { return AllServing(); }));
  backend(0).Set("100", "before");
  RecordingClient client({pub(0), pub(1)}, {"items", "100"});
  ASSERT_TRUE(client.AwaitRowContaining("before"));
  const absl::Time started = absl::Now();
  std::thread drainer([&] { replica(0).Drain(absl::Seconds(20)); });
  uint64_t last = 0;
  for (int i = 0; i < 10; ++i) {  // Changes keep coming during the drain.
    last = backend(1).Set("100", absl::StrCat("change ", i));
    Notify(internal(1), {"100"});
    absl::SleepFor(absl::Milliseconds(100));
  }
  drainer.join();
  EXPECT_LT(absl::Now() - started, absl::Seconds(10))
      << "the drain ends once the client has moved";
  ASSERT_TRUE(client.AwaitRowContaining("change 9"));
  const std::vector<v1::Update> seen = client.seen();
  EXPECT_EQ(seen.back().version(), last);
  for (size_t i = 1; i < seen.size(); ++i) {
    EXPECT_GT(seen[i].version(), seen[i - 1].version());
  }
}

// Real processes: a replica killed with SIGKILL; the client library moves to
// the other replica and converges.
TEST_F(ReplicasTest, ClientMovesToAnotherReplicaAfterSigkill) {
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
  for (int i = 0; i < 2; ++i) {
    public_ports.push_back(FreePort());
    internal_ports.push_back(FreePort());
    processes.push_back(std::make_unique<Subprocess>(
        std::vector<std::string>{
            binary, "--bus=nats", absl::StrCat("--nats_url=", nats_->url()),
            absl::StrCat("--nats_subject_prefix=", prefix_),
            absl::StrCat("--config=", config),
            absl::StrCat("--public_address=127.0.0.1:", public_ports[i]),
            absl::StrCat("--internal_address=127.0.0.1:", internal_ports[i]),
            "--metrics_address=127.0.0.1:0"},
        TempPath(absl::StrCat("replica", i, ".log"))));
    ASSERT_TRUE(WaitForPort(public_ports[i], absl::Seconds(10)))
        << processes[i]->Log();
  }
  ASSERT_TRUE(WaitFor([&] {
    return HealthStatus(internal_ports[0]) == 1 &&
           HealthStatus(internal_ports[1]) == 1;
  }));
  backend(0).Set("100", "before");
  RecordingClient client(public_ports, {"items", "100"});
  ASSERT_TRUE(client.AwaitRowContaining("before"));

  processes[0]->Kill();  // The first target, where the client is connected.
  const uint64_t v = backend(0).Set("100", "after the kill");
  ASSERT_TRUE(Notify(internal_ports[1], {"100"}).ok());
  ASSERT_TRUE(client.AwaitRowContaining("after the kill"));
  const std::vector<v1::Update> seen = client.seen();
  EXPECT_EQ(seen.back().version(), v);
  for (size_t i = 1; i < seen.size(); ++i) {
    EXPECT_GT(seen[i].version(), seen[i - 1].version());
  }
}

}  // namespace
}  // namespace entitysync::testing
