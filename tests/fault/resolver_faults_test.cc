// Resolver faults with the real server and the items resolver behind a
// fault-injecting wrapper: unavailable, timing out, very slow, answering
// NOT_FOUND, answering an older version, and flapping between failure and
// success. Changes keep coming. During a failure, subscribers get the
// defined `stale` signal, never silence; afterwards no key stays stuck:
// every subscriber converges to the final state, and versions never go
// backwards.
#include <atomic>
#include <memory>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/str_cat.h"
#include "examples/items/items_resolve.h"
#include "examples/items/items_store.h"
#include "gtest/gtest.h"
#include "tests/e2e/e2e_harness.h"
#include "tests/fault/fault_client.h"
#include "tests/testing/wait.h"

namespace entitysync::testing {
namespace {

constexpr int kKeys = 6;
constexpr int kClients = 3;
constexpr int kTimeoutMs = 300;

enum class Fault {
  kNone,
  kUnavailable,
  kTimeout,
  kSlow,
  kNotFound,  // the call fails with NOT_FOUND (e.g. a route gone missing)
  kOlder,     // answers an older version: a lagging read replica
  kFlapping
};

// The items resolver, with a fault applied to every call.
class FaultyResolver final : public v1::Resolver::Service {
 public:
  explicit FaultyResolver(examples::ItemsStore* store) : store_(store) {}
  void Set(Fault fault) { fault_ = fault; }

  grpc::Status Resolve(grpc::ServerContext*, const v1::ResolveRequest* request,
                       v1::ResolveResponse* response) override {
    const Fault fault = fault_.load();
    const int call = ++calls_;
    switch (fault) {
      case Fault::kUnavailable:
        return grpc::Status(grpc::StatusCode::UNAVAILABLE, "injected");
      case Fault::kNotFound:
        return grpc::Status(grpc::StatusCode::NOT_FOUND, "no such route");
      case Fault::kFlapping:
        if (call % 2 == 0) {
          return grpc::Status(grpc::StatusCode::UNAVAILABLE, "flapping");
        }
        break;
      case Fault::kTimeout:
        absl::SleepFor(absl::Milliseconds(kTimeoutMs * 3 / 2));
        break;
      case Fault::kSlow: {
        // Most answers fast, a tail of seconds (past the timeout).
        static thread_local std::mt19937 gen(call);
        const int ms = std::uniform_int_distribution<int>(0, 9)(gen) == 0
                           ? 1000 + call % 1000
                           : std::uniform_int_distribution<int>(0, 100)(gen);
        absl::SleepFor(absl::Milliseconds(ms));
        break;
      }
      default:
        break;
    }
    if (absl::Status s = examples::ResolveItems(*store_, *request, response);
        !s.ok()) {
      return grpc::Status(grpc::StatusCode::INTERNAL, std::string(s.message()));
    }
    absl::MutexLock lock(&mu_);
    for (v1::ResolvedKey& r : *response->mutable_results()) {
      const std::string id = r.key().id();
      if (fault == Fault::kOlder && first_.contains(id)) {
        r = first_[id];  // the oldest answer it ever gave
      } else if (!first_.contains(id)) {
        first_[id] = r;
      }
    }
    return grpc::Status::OK;
  }

 private:
  examples::ItemsStore* const store_;
  std::atomic<Fault> fault_{Fault::kNone};
  std::atomic<int> calls_{0};
  absl::Mutex mu_;
  absl::flat_hash_map<std::string, v1::ResolvedKey> first_ ABSL_GUARDED_BY(mu_);
};

class ResolverFaultsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto store = examples::ItemsStore::Open(TempPath("faulty.db"));
    ASSERT_TRUE(store.ok());
    store_ = *std::move(store);
    for (int k = 0; k < kKeys; ++k) final_[k] = Set(k, "start");
    resolver_ = std::make_unique<FaultyResolver>(store_.get());
    grpc::ServerBuilder builder;
    int port = 0;
    builder.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(),
                             &port);
    builder.RegisterService(resolver_.get());
    resolver_server_ = builder.BuildAndStart();
    ASSERT_NE(resolver_server_, nullptr);

    ServerOptions options;
    options.config = ItemsConfig(absl::StrCat("127.0.0.1:", port));
    options.config.mutable_entities(0)->mutable_resolver()->set_timeout_ms(
        kTimeoutMs);
    options.public_address = "127.0.0.1:0";
    options.internal_address = "127.0.0.1:0";
    options.min_client_ping_interval = absl::Milliseconds(100);
    options.scheduler.retry_initial = absl::Milliseconds(50);
    options.scheduler.retry_max = absl::Milliseconds(500);
    server_ = StartServer(std::move(options));
    ASSERT_NE(server_, nullptr);
    for (int i = 0; i < kClients; ++i) {
      clients_.push_back(std::make_unique<FaultClient>(
          std::vector<int>{server_->public_port()}, kKeys));
    }
    watcher_ = std::make_unique<RawStream>(server_->public_port());
    for (int k = 0; k < kKeys; ++k) {
      ASSERT_TRUE(
          watcher_->AwaitSubscribed(watcher_->Subscribe("items", Id(k))));
    }
    ASSERT_TRUE(Converged(absl::Seconds(10))) << "initial snapshots";
    writer_ = std::thread([this] { Write(); });
  }

  void TearDown() override {
    StopWriting();
    watcher_.reset();
    clients_.clear();
    server_.reset();
    resolver_server_->Shutdown();
  }

  uint64_t Set(int k, const std::string& name) {
    examples::ItemChange change;
    change.id = Id(k);
    change.name = name;
    auto v = store_->Upsert(change);
    EXPECT_TRUE(v.ok());
    return v.ok() ? *v : 0;
  }

  // Changes a key every 20 ms, announced with its new version, as the items
  // CLI does (`items set --notify`).
  void Write() {
    auto stub = v1::Notifier::NewStub(Channel(server_->internal_port()));
    for (int n = 0; !stop_; ++n) {
      const int k = n % kKeys;
      const uint64_t v = Set(k, absl::StrCat("change ", n));
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
      EXPECT_TRUE(stub->Notify(&context, request, &response).ok());
      absl::SleepFor(absl::Milliseconds(20));
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

  bool SawStale() const {
    for (const auto& m : watcher_->Messages()) {
      if (m.has_stale()) return true;
    }
    return false;
  }

  // Runs `fault` for `duration` while changes flow, then heals.
  void Inject(Fault fault, absl::Duration duration) {
    absl::SleepFor(absl::Milliseconds(100));
    resolver_->Set(fault);
    absl::SleepFor(duration);
    resolver_->Set(Fault::kNone);
  }

  void ExpectRecovered() {
    StopWriting();
    // One more change after the heal: what a user does next must work too.
    {
      absl::MutexLock lock(&mu_);
      final_[0] = Set(0, "after the fault");
    }
    auto stub = v1::Notifier::NewStub(Channel(server_->internal_port()));
    v1::NotifyRequest request;
    request.add_changes()->mutable_key()->set_entity("items");
    request.mutable_changes(0)->mutable_key()->set_id(Id(0));
    v1::NotifyResponse response;
    grpc::ClientContext context;
    EXPECT_TRUE(stub->Notify(&context, request, &response).ok());
    EXPECT_TRUE(Converged(absl::Seconds(15)))
        << "a key stayed stuck after the resolver recovered";
    for (const auto& c : clients_) {
      for (int k = 0; k < kKeys; ++k) {
        std::string why;
        EXPECT_TRUE(c->Monotonic(k, &why)) << why;
      }
    }
    for (int k = 0; k < kKeys; ++k) {
      const auto updates = watcher_->Updates(Id(k));
      for (size_t i = 1; i < updates.size(); ++i) {
        EXPECT_GE(updates[i].version(), updates[i - 1].version())
            << "key " << Id(k) << " went backwards on the wire";
      }
    }
    EXPECT_EQ(server_->stream_count(), static_cast<size_t>(kClients + 1));
  }

  std::unique_ptr<examples::ItemsStore> store_;
  std::unique_ptr<FaultyResolver> resolver_;
  std::unique_ptr<grpc::Server> resolver_server_;
  std::unique_ptr<EntitySyncServer> server_;
  std::vector<std::unique_ptr<FaultClient>> clients_;
  std::unique_ptr<RawStream> watcher_;
  std::thread writer_;
  std::atomic<bool> stop_{false};
  absl::Mutex mu_;
  uint64_t final_[kKeys] ABSL_GUARDED_BY(mu_) = {};
};

TEST_F(ResolverFaultsTest, UnavailableSendsStaleThenRecovers) {
  Inject(Fault::kUnavailable, absl::Seconds(1));
  EXPECT_TRUE(SawStale()) << "subscribers were told nothing";
  ExpectRecovered();
}

TEST_F(ResolverFaultsTest, TimeoutsSendStaleThenRecover) {
  Inject(Fault::kTimeout, absl::Seconds(1));
  EXPECT_TRUE(SawStale());
  ExpectRecovered();
}

TEST_F(ResolverFaultsTest, VerySlowAnswersWithATailOfSeconds) {
  Inject(Fault::kSlow, absl::Seconds(2));
  ExpectRecovered();
}

TEST_F(ResolverFaultsTest, FlappingResolver) {
  Inject(Fault::kFlapping, absl::Seconds(1));
  ExpectRecovered();
}

TEST_F(ResolverFaultsTest, LaggingResolverIsAskedAgainUntilItCatchesUp) {
  // Older answers are never delivered (ExpectRecovered checks the wire);
  // the changes they hid arrive once the resolver catches up, with no new
  // Notify for those keys.
  Inject(Fault::kOlder, absl::Seconds(1));
  EXPECT_TRUE(SawStale()) << "subscribers were not told they may be behind";
  ExpectRecovered();
}

TEST_F(ResolverFaultsTest, NotFoundCallsSendStaleThenRecover) {
  Inject(Fault::kNotFound, absl::Seconds(1));
  EXPECT_TRUE(SawStale());
  ExpectRecovered();
}

}  // namespace
}  // namespace entitysync::testing
