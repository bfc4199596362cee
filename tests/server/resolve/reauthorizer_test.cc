// Reauthorizer with a fake resolver and recording subscribers: who is asked,
// who loses access, and that failures keep it.
#include "server/resolve/reauthorizer.h"

#include <deque>
#include <memory>
#include <string>
#include <thread>

#include "absl/container/flat_hash_set.h"
#include "absl/synchronization/mutex.h"
#include "gtest/gtest.h"
#include "server/core/entity_key.h"
#include "tests/testing/recording_subscriber.h"
#include "tests/testing/wait.h"

namespace entitysync {
namespace {

using testing::RecordingSubscriber;
using testing::WaitFor;

// Answers every call with a rule: keys whose id is in `denied_ids` for the
// call's credentials are DENIED, the rest FOUND; or fails the call.
class RuleResolver : public ResolverClient {
 public:
  void Resolve(const v1::ResolveRequest& request, absl::Duration,
               Callback done) override {
    absl::StatusOr<v1::ResolveResponse> answer;
    {
      absl::MutexLock lock(&mu_);
      requests_.push_back(request);
      if (!fail_.ok()) {
        answer = fail_;
      } else {
        v1::ResolveResponse response;
        for (const v1::EntityKey& key : request.keys()) {
          v1::ResolvedKey* r = response.add_results();
          *r->mutable_key() = key;
          r->set_status(denied_.contains({request.credentials(), key.id()})
                            ? v1::ResolvedKey::DENIED
                            : v1::ResolvedKey::FOUND);
        }
        // A key nobody asked about: must be ignored.
        v1::ResolvedKey* extra = response.add_results();
        extra->mutable_key()->set_entity("items");
        extra->mutable_key()->set_id("not-asked");
        extra->set_status(v1::ResolvedKey::DENIED);
        answer = std::move(response);
      }
    }
    // Like gRPC: on another thread.
    std::thread([done = std::move(done), answer]() mutable {
      done(std::move(answer));
    }).detach();
  }
  void Deny(const std::string& credentials, const std::string& id) {
    absl::MutexLock lock(&mu_);
    denied_.insert({credentials, id});
  }
  void FailWith(absl::Status status) {
    absl::MutexLock lock(&mu_);
    fail_ = std::move(status);
  }
  std::vector<v1::ResolveRequest> requests() const {
    absl::MutexLock lock(&mu_);
    return requests_;
  }

 private:
  mutable absl::Mutex mu_;
  absl::flat_hash_set<std::pair<std::string, std::string>> denied_;
  absl::Status fail_;
  std::vector<v1::ResolveRequest> requests_;
};

v1::EntityKey Key(const std::string& id) {
  v1::EntityKey key;
  key.set_entity("items");
  key.set_id(id);
  return key;
}

bool Revoked(const RecordingSubscriber& s, const std::string& id) {
  for (const auto& m : s.messages()) {
    if (m.has_error() && m.error().key().id() == id &&
        m.error().code() ==
            static_cast<int>(absl::StatusCode::kPermissionDenied))
      return true;
  }
  return false;
}

class ReauthorizerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    v1::EntityConfig config;
    config.set_name("items");
    config.mutable_resolver()->set_target("fake");
    config.mutable_resolver()->set_timeout_ms(1000);
    config.set_max_batch_keys(2);
    resolver_ = std::make_shared<RuleResolver>();
    table_.Add(config, resolver_);
    reauthorizer_ = std::make_unique<Reauthorizer>(&table_, &hub_, &executor_,
                                                   absl::ZeroDuration(), 1);
  }
  void TearDown() override { reauthorizer_->Shutdown(absl::Seconds(2)); }

  std::shared_ptr<RecordingSubscriber> Subscribe(const std::string& id,
                                                 const std::string& creds) {
    auto s = std::make_shared<RecordingSubscriber>();
    hub_.Add(Key(id), s, creds);
    return s;
  }
  void Sweep() {
    ASSERT_TRUE(reauthorizer_->SweepNow());
    ASSERT_TRUE(WaitFor([&] { return !reauthorizer_->sweeping(); }));
  }

  Hub hub_{nullptr};
  Executor executor_{2};
  EntityTable table_;
  std::shared_ptr<RuleResolver> resolver_;
  std::unique_ptr<Reauthorizer> reauthorizer_;
};

TEST_F(ReauthorizerTest, DeniedKeyIsRevokedOnlyForThoseCredentials) {
  auto alice1 = Subscribe("1", "alice");
  auto bob1 = Subscribe("1", "bob");
  auto alice2 = Subscribe("2", "alice");
  resolver_->Deny("alice", "1");
  Sweep();
  EXPECT_TRUE(Revoked(*alice1, "1"));
  EXPECT_FALSE(Revoked(*bob1, "1"));
  EXPECT_FALSE(Revoked(*alice2, "2"));
  EXPECT_TRUE(alice2->messages().empty());
  // The key nobody asked about revoked nothing; counted once.
  EXPECT_EQ(reauthorizer_->stats().revoked, 1u);
  for (const auto& r : resolver_->requests()) {
    EXPECT_EQ(r.reason(), v1::ResolveRequest::REAUTHORIZE);
  }
}

TEST_F(ReauthorizerTest, OneCallPerCredentialAndBatchOfKeys) {
  // alice: 3 keys in batches of 2 -> 2 calls; bob: 1 key -> 1 call; the
  // second subscriber of (3, alice) asks nothing more.
  Subscribe("1", "alice");
  Subscribe("2", "alice");
  Subscribe("3", "alice");
  Subscribe("3", "alice");
  Subscribe("1", "bob");
  Sweep();
  const auto requests = resolver_->requests();
  ASSERT_EQ(requests.size(), 3u);
  size_t alice_keys = 0;
  for (const auto& r : requests) {
    EXPECT_LE(r.keys_size(), 2);
    if (r.credentials() == "alice") alice_keys += r.keys_size();
  }
  EXPECT_EQ(alice_keys, 3u);
}

TEST_F(ReauthorizerTest, FailedCallsKeepAccessAndPermissionDeniedRevokes) {
  auto alice = Subscribe("1", "alice");
  resolver_->FailWith(absl::UnavailableError("resolver down"));
  Sweep();
  EXPECT_FALSE(Revoked(*alice, "1"));
  EXPECT_EQ(reauthorizer_->stats().failed_calls, 1u);

  resolver_->FailWith(absl::PermissionDeniedError("not yours"));
  Sweep();
  EXPECT_TRUE(Revoked(*alice, "1"));

  auto bob = Subscribe("2", "bob");
  resolver_->FailWith(absl::UnauthenticatedError("token expired"));
  Sweep();
  EXPECT_TRUE(Revoked(*bob, "2")) << "an expired token revokes too";
}

TEST_F(ReauthorizerTest, WildcardSubscriptionsAreAskedAboutTheWildcard) {
  auto all = Subscribe("*", "alice");
  resolver_->Deny("alice", "*");
  Sweep();
  EXPECT_TRUE(Revoked(*all, "*"));
}

TEST_F(ReauthorizerTest, IntervalSweepsOnItsOwn) {
  reauthorizer_->Shutdown(absl::Seconds(1));
  reauthorizer_ = std::make_unique<Reauthorizer>(&table_, &hub_, &executor_,
                                                 absl::Milliseconds(50), 1);
  auto alice = Subscribe("1", "alice");
  reauthorizer_->Start();
  resolver_->Deny("alice", "1");
  EXPECT_TRUE(WaitFor([&] { return Revoked(*alice, "1"); }));
  EXPECT_TRUE(WaitFor([&] { return reauthorizer_->stats().sweeps >= 2; }));
}

}  // namespace
}  // namespace entitysync
