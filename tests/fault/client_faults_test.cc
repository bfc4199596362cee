// Faults between clients and a replica, through FaultProxy, with the real
// server, the real SQLite resolver and the real client library. Changes keep
// coming during every fault. After it, each case checks what a user relies
// on: every subscriber converges to the final state of every key, versions
// never go backwards, no rows arrive after an unsubscribe, and the replica
// holds exactly the streams and subscriptions of the clients still there
// (nothing leaked: memory stays bounded).
#include <atomic>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "client/subscriber.h"
#include "gtest/gtest.h"
#include "tests/e2e/e2e_harness.h"
#include "tests/fault/fault_client.h"
#include "tests/fault/fault_proxy.h"
#include "tests/testing/wait.h"

namespace entitysync::testing {
namespace {

constexpr int kClients = 4;
constexpr int kKeys = 6;

class ClientFaultsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    for (int k = 0; k < kKeys; ++k) final_[k] = backend_.Set(Id(k), "start");
    ServerOptions options;
    options.config = ItemsConfig(backend_.target());
    options.public_address = "127.0.0.1:0";
    options.internal_address = "127.0.0.1:0";
    // The clients ping every 200 ms, and so does the server.
    options.min_client_ping_interval = absl::Milliseconds(100);
    options.keepalive_time = absl::Milliseconds(200);
    options.keepalive_timeout = absl::Milliseconds(300);
    server_ = StartServer(std::move(options));
    ASSERT_NE(server_, nullptr);
    proxy_ = std::make_unique<FaultProxy>(server_->public_port());
    for (int i = 0; i < kClients; ++i) {
      clients_.push_back(std::make_unique<FaultClient>(
          std::vector<int>{proxy_->port()}, kKeys));
    }
    ASSERT_TRUE(Converged(absl::Seconds(10))) << "initial snapshots";
    writer_ = std::thread([this] { Write(); });
  }

  void TearDown() override {
    StopWriting();
    clients_.clear();
    proxy_.reset();
    server_.reset();
  }

  // Changes every key in turn, about 100 changes a second, until stopped.
  void Write() {
    auto stub = v1::Notifier::NewStub(Channel(server_->internal_port()));
    for (int n = 0; !stop_; ++n) {
      const int k = n % kKeys;
      const uint64_t v = backend_.Set(Id(k), absl::StrCat("change ", n));
      {
        absl::MutexLock lock(&mu_);
        final_[k] = v;
      }
      v1::NotifyRequest request;
      *request.add_changes()->mutable_key() = [&] {
        v1::EntityKey key;
        key.set_entity("items");
        key.set_id(Id(k));
        return key;
      }();
      request.mutable_changes(0)->set_version(v);
      v1::NotifyResponse response;
      grpc::ClientContext context;
      EXPECT_TRUE(stub->Notify(&context, request, &response).ok());
      absl::SleepFor(absl::Milliseconds(10));
    }
  }
  void StopWriting() {
    stop_ = true;
    if (writer_.joinable()) writer_.join();
  }

  // Every client that holds key k has its final version.
  bool Converged(absl::Duration timeout, int skip_key = -1) {
    return WaitFor(
        [&] {
          absl::MutexLock lock(&mu_);
          for (const auto& c : clients_) {
            for (int k = 0; k < kKeys; ++k) {
              if (k != skip_key && c->last(k) != final_[k]) return false;
            }
          }
          return true;
        },
        timeout);
  }

  // After the fault: stop changes, then check everything the header names.
  void ExpectRecovered(int unsubscribed_key = -1) {
    StopWriting();
    EXPECT_TRUE(Converged(absl::Seconds(15), unsubscribed_key))
        << "not every subscriber reached the final state";
    for (const auto& c : clients_) {
      for (int k = 0; k < kKeys; ++k) {
        std::string why;
        EXPECT_TRUE(c->Monotonic(k, &why)) << why;
      }
      EXPECT_EQ(c->after_unsubscribe(), 0) << "rows after unsubscribe";
    }
    const size_t subscriptions =
        kClients * kKeys - (unsubscribed_key >= 0 ? kClients : 0);
    EXPECT_TRUE(WaitFor([&] {
      return server_->stream_count() == kClients &&
             server_->hub().subscription_count() == subscriptions;
    })) << "the replica holds "
        << server_->stream_count() << " streams and "
        << server_->hub().subscription_count() << " subscriptions for "
        << kClients << " clients and " << subscriptions << " subscriptions";
  }

  ItemsBackend backend_;
  std::unique_ptr<EntitySyncServer> server_;
  std::unique_ptr<FaultProxy> proxy_;
  std::vector<std::unique_ptr<FaultClient>> clients_;
  std::thread writer_;
  std::atomic<bool> stop_{false};
  absl::Mutex mu_;
  uint64_t final_[kKeys] ABSL_GUARDED_BY(mu_) = {};
};

TEST_F(ClientFaultsTest, ConnectionsResetMidStream) {
  for (int i = 0; i < 3; ++i) {
    absl::SleepFor(absl::Milliseconds(300));
    proxy_->Reset();
  }
  ExpectRecovered();
  EXPECT_GT(proxy_->accepted(), static_cast<size_t>(kClients))
      << "the clients reconnected";
}

TEST_F(ClientFaultsTest, BlackHoleIsNoticedByKeepaliveAndRepaired) {
  // Long enough for many pings before the fault.
  absl::SleepFor(absl::Milliseconds(1500));
  const size_t before = proxy_->accepted();
  proxy_->BlackHole();
  // Longer than keepalive time + timeout: every stream must be replaced.
  absl::SleepFor(absl::Seconds(2));
  proxy_->Pass();
  ExpectRecovered();
  EXPECT_GE(proxy_->accepted(), before + kClients)
      << "every client noticed the dead connection and reconnected";
}

TEST_F(ClientFaultsTest, BlackHoleOnAnIdleStreamIsNoticedToo) {
  StopWriting();  // nothing flows: only the pings can tell
  absl::SleepFor(absl::Milliseconds(1500));
  const size_t before = proxy_->accepted();
  proxy_->BlackHole();
  EXPECT_TRUE(WaitFor([&] { return proxy_->accepted() >= before + kClients; },
                      absl::Seconds(5)))
      << "the clients kept waiting on dead connections";
  proxy_->Pass();
  ExpectRecovered();
}

TEST_F(ClientFaultsTest, ReplicaDropsIdleStreamsOfVanishedClients) {
  StopWriting();  // idle: only keepalive pings cross the link
  absl::SleepFor(absl::Milliseconds(1500));
  ASSERT_EQ(server_->stream_count(), static_cast<size_t>(kClients));
  proxy_->BlackHole();
  // The clients' reconnects are black-holed too, so no stream is open; the
  // replica must notice its streams' peers are gone and free them.
  EXPECT_TRUE(
      WaitFor([&] { return server_->stream_count() == 0; }, absl::Seconds(5)))
      << server_->stream_count() << " streams still held";
  EXPECT_TRUE(WaitFor([&] { return server_->hub().subscription_count() == 0; },
                      absl::Seconds(5)));
  proxy_->Pass();
  ExpectRecovered();
}

TEST_F(ClientFaultsTest, DelayedLinkStillConvergesInOrder) {
  proxy_->Delay(absl::Milliseconds(30));
  absl::SleepFor(absl::Seconds(1));
  proxy_->Pass();
  ExpectRecovered();
}

TEST_F(ClientFaultsTest, HalfClosedStreamsAreEndedAndClientsComeBack) {
  absl::SleepFor(absl::Milliseconds(200));
  proxy_->HalfClose();
  ExpectRecovered();
}

TEST_F(ClientFaultsTest, RefusedReconnectsUntilTheLinkReturns) {
  proxy_->Refuse(true);
  proxy_->Reset();
  absl::SleepFor(absl::Seconds(1));
  proxy_->Refuse(false);
  ExpectRecovered();
}

TEST_F(ClientFaultsTest, NoRowsAfterUnsubscribeAcrossResets) {
  absl::SleepFor(absl::Milliseconds(200));
  for (const auto& c : clients_) c->Unsubscribe(0);
  proxy_->Reset();
  absl::SleepFor(absl::Milliseconds(500));
  ExpectRecovered(/*unsubscribed_key=*/0);
}

}  // namespace
}  // namespace entitysync::testing
