#include "server/resolve/resolve_scheduler.h"

#include <cstdint>
#include <deque>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/synchronization/mutex.h"
#include "gtest/gtest.h"
#include "tests/testing/recording_subscriber.h"
#include "tests/testing/wait.h"

namespace entitysync {
namespace {

using testing::RecordingSubscriber;
using testing::WaitFor;

v1::EntityKey Key(const std::string& id, const std::string& entity = "items") {
  v1::EntityKey key;
  key.set_entity(entity);
  key.set_id(id);
  return key;
}

// Holds every Resolve call until the test answers it.
class FakeResolverClient : public ResolverClient {
 public:
  struct Call {
    v1::ResolveRequest request;
    Callback done;
  };
  void Resolve(const v1::ResolveRequest& request, absl::Duration,
               Callback done) override {
    absl::MutexLock lock(&mu_);
    calls_.push_back(Call{request, std::move(done)});
    ++total_;
  }
  int total() const {
    absl::MutexLock lock(&mu_);
    return total_;
  }
  size_t pending() const {
    absl::MutexLock lock(&mu_);
    return calls_.size();
  }
  Call Take() {
    absl::MutexLock lock(&mu_);
    Call c = std::move(calls_.front());
    calls_.pop_front();
    return c;
  }

 private:
  mutable absl::Mutex mu_;
  std::deque<Call> calls_;
  int total_ = 0;
};

v1::ResolveResponse Found(const v1::ResolveRequest& request, uint64_t version,
                          const std::string& data) {
  v1::ResolveResponse response;
  for (const v1::EntityKey& key : request.keys()) {
    v1::ResolvedKey* r = response.add_results();
    *r->mutable_key() = key;
    r->set_version(version);
    v1::Row* row = r->add_rows();
    row->set_data(data + ":" + key.id() + ":" + request.credentials());
    row->set_content_type("text/plain");
  }
  return response;
}

class ResolveSchedulerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    Build(/*per_credentials=*/false, /*max_concurrent=*/4);
  }

  void Build(bool per_credentials, int max_concurrent,
             int max_concurrent_subscribe = 0) {
    scheduler_.reset();
    table_ = std::make_unique<EntityTable>();
    v1::EntityConfig config;
    config.set_name("items");
    config.mutable_resolver()->set_target("fake");
    config.mutable_resolver()->set_timeout_ms(1000);
    config.set_max_batch_keys(100);
    config.set_max_concurrent_resolves(max_concurrent);
    config.set_per_credentials(per_credentials);
    config.set_max_concurrent_subscribe_resolves(max_concurrent_subscribe);
    resolver_ = std::make_shared<FakeResolverClient>();
    table_->Add(config, resolver_);
    SchedulerOptions options;
    options.retry_initial = absl::Milliseconds(20);
    options.retry_max = absl::Milliseconds(50);
    scheduler_ = std::make_unique<ResolveScheduler>(
        table_.get(), &hub_, &executor_, &clock_, options);
  }

  void TearDown() override { scheduler_->Shutdown(absl::Seconds(1)); }

  void Notice(const std::string& id, std::optional<uint64_t> version = {}) {
    v1::Notice notice;
    *notice.mutable_key() = Key(id);
    if (version) notice.set_version(*version);
    scheduler_->OnNotice(notice);
  }

  std::shared_ptr<RecordingSubscriber> Subscribe(
      const std::string& id, const std::string& creds = "") {
    auto s = std::make_shared<RecordingSubscriber>();
    hub_.Add(Key(id), s, creds);
    return s;
  }

  Hub hub_{nullptr};
  Executor executor_{2};
  VersionClock clock_;
  std::unique_ptr<EntityTable> table_;
  std::shared_ptr<FakeResolverClient> resolver_;
  std::unique_ptr<ResolveScheduler> scheduler_;
};

TEST_F(ResolveSchedulerTest, NoSubscribersNoResolve) {
  Notice("1");
  absl::SleepFor(absl::Milliseconds(50));
  EXPECT_EQ(resolver_->total(), 0);
  EXPECT_EQ(scheduler_->stats().notices_without_subscribers, 1u);
}

TEST_F(ResolveSchedulerTest,
       ManyNoticesDuringSlowResolveGiveAtMostTwoResolves) {
  auto a = Subscribe("1");
  auto b = Subscribe("1");
  Notice("1");
  ASSERT_TRUE(WaitFor([&] { return resolver_->pending() == 1; }));
  for (int i = 0; i < 50; ++i) Notice("1");
  absl::SleepFor(absl::Milliseconds(50));
  EXPECT_EQ(resolver_->total(), 1) << "coalesced while in flight";
  auto first = resolver_->Take();
  first.done(Found(first.request, 1, "v1"));
  ASSERT_TRUE(WaitFor([&] { return resolver_->pending() == 1; }));
  auto second = resolver_->Take();
  second.done(Found(second.request, 2, "v2"));
  absl::SleepFor(absl::Milliseconds(50));
  EXPECT_EQ(resolver_->total(), 2);
  // Both subscribers got both versions, resolved once for both.
  for (auto* s : {a.get(), b.get()}) {
    auto updates = s->updates();
    ASSERT_EQ(updates.size(), 2u);
    EXPECT_EQ(updates[0].version(), 1u);
    EXPECT_EQ(updates[1].version(), 2u);
  }
}

TEST_F(ResolveSchedulerTest, DirtyKeysOfOneEntityAreBatched) {
  Build(false, /*max_concurrent=*/1);
  std::vector<std::shared_ptr<RecordingSubscriber>> subs;
  for (int i = 0; i < 10; ++i) subs.push_back(Subscribe(std::to_string(i)));
  Notice("0");
  ASSERT_TRUE(WaitFor([&] { return resolver_->pending() == 1; }));
  for (int i = 1; i < 10; ++i) Notice(std::to_string(i));
  auto first = resolver_->Take();
  EXPECT_EQ(first.request.keys_size(), 1);
  EXPECT_EQ(first.request.reason(), v1::ResolveRequest::CHANGE);
  first.done(Found(first.request, 1, "x"));
  ASSERT_TRUE(WaitFor([&] { return resolver_->pending() == 1; }));
  auto batch = resolver_->Take();
  EXPECT_EQ(batch.request.keys_size(), 9) << "nine dirty keys, one call";
  batch.done(Found(batch.request, 1, "x"));
  EXPECT_EQ(resolver_->total(), 2);
  for (auto& s : subs) {
    ASSERT_TRUE(WaitFor([&] { return s->updates().size() == 1; }));
  }
}

TEST_F(ResolveSchedulerTest, VersionsNeverGoBackwards) {
  auto s = Subscribe("1");
  Notice("1");
  ASSERT_TRUE(WaitFor([&] { return resolver_->pending() == 1; }));
  auto c1 = resolver_->Take();
  c1.done(Found(c1.request, 5, "five"));
  Notice("1");
  ASSERT_TRUE(WaitFor([&] { return resolver_->pending() == 1; }));
  auto c2 = resolver_->Take();
  c2.done(
      Found(c2.request, 3, "three"));  // An out-of-date replica of the data.
  Notice("1");
  ASSERT_TRUE(WaitFor([&] { return resolver_->pending() == 1; }));
  auto c3 = resolver_->Take();
  c3.done(Found(c3.request, 6, "six"));
  ASSERT_TRUE(WaitFor([&] { return s->updates().size() == 2; }));
  auto updates = s->updates();
  EXPECT_EQ(updates[0].version(), 5u);
  EXPECT_EQ(updates[1].version(), 6u);
  EXPECT_EQ(scheduler_->stats().older_dropped, 1u);
}

TEST_F(ResolveSchedulerTest, IdenticalRowsAreNotSentAgain) {
  auto s = Subscribe("1");
  for (uint64_t v : {1, 2, 3}) {
    Notice("1");
    ASSERT_TRUE(WaitFor([&] { return resolver_->pending() == 1; }));
    auto c = resolver_->Take();
    // Version 2 has the same rows as version 1.
    c.done(Found(c.request, v, v == 3 ? "changed" : "same"));
  }
  ASSERT_TRUE(WaitFor([&] { return s->updates().size() == 2; }));
  absl::SleepFor(absl::Milliseconds(30));
  auto updates = s->updates();
  ASSERT_EQ(updates.size(), 2u);
  EXPECT_EQ(updates[0].version(), 1u);
  EXPECT_EQ(updates[1].version(), 3u);
}

TEST_F(ResolveSchedulerTest, FailureSendsStaleOnceThenRecovers) {
  auto s = Subscribe("1");
  Notice("1");
  ASSERT_TRUE(WaitFor([&] { return resolver_->pending() == 1; }));
  resolver_->Take().done(absl::UnavailableError("resolver down"));
  ASSERT_TRUE(WaitFor([&] { return resolver_->pending() == 1; })) << "retried";
  resolver_->Take().done(absl::DeadlineExceededError("slow"));
  ASSERT_TRUE(WaitFor([&] { return resolver_->pending() == 1; }));
  auto ok = resolver_->Take();
  ok.done(Found(ok.request, 7, "back"));
  ASSERT_TRUE(WaitFor([&] { return s->count() == 2; }));
  auto messages = s->messages();
  ASSERT_TRUE(messages[0].has_stale()) << "one stale signal for two failures";
  EXPECT_EQ(messages[0].stale().key().id(), "1");
  EXPECT_NE(messages[0].stale().reason().find("UNAVAILABLE"),
            std::string::npos);
  ASSERT_TRUE(messages[1].has_update());
  EXPECT_EQ(messages[1].update().version(), 7u);
  EXPECT_EQ(scheduler_->stats().resolve_failures, 2u);
}

TEST_F(ResolveSchedulerTest, AnswerBehindTheNoticeIsRetriedThenTaken) {
  auto s = Subscribe("1");
  // A notice version the resolver never reaches (another clock, or a bogus
  // value): lag retries, then the resolver's answer is taken.
  Notice("1", UINT64_MAX);
  int calls = 0;
  while (s->updates().empty() && calls < 20) {
    ASSERT_TRUE(WaitFor([&] { return resolver_->pending() == 1; }))
        << "retried after " << calls << " answers";
    auto c = resolver_->Take();
    c.done(Found(c.request, 5, "v5"));
    ++calls;
    WaitFor([&] { return !s->updates().empty() || resolver_->pending() > 0; });
  }
  ASSERT_EQ(s->updates().size(), 1u) << "the key froze";
  EXPECT_EQ(s->updates()[0].version(), 5u);
  EXPECT_GT(calls, 1) << "a behind answer is asked again first";
  EXPECT_LE(calls, 9);
  ASSERT_TRUE(s->messages()[0].has_stale());
  EXPECT_NE(s->messages()[0].stale().reason().find("behind"),
            std::string::npos);
}

TEST_F(ResolveSchedulerTest, PerCredentialsResolvesOncePerDistinctCredential) {
  Build(/*per_credentials=*/true, 4);
  auto alice1 = Subscribe("1", "alice");
  auto alice2 = Subscribe("1", "alice");
  auto bob = Subscribe("1", "bob");
  Notice("1");
  ASSERT_TRUE(WaitFor([&] { return resolver_->pending() == 2; }));
  for (int i = 0; i < 2; ++i) {
    auto c = resolver_->Take();
    c.done(Found(c.request, 1, "view"));
  }
  ASSERT_TRUE(WaitFor([&] { return bob->updates().size() == 1; }));
  ASSERT_TRUE(WaitFor([&] { return alice2->updates().size() == 1; }));
  EXPECT_EQ(alice1->updates()[0].rows(0).data(), "view:1:alice");
  EXPECT_EQ(alice2->updates()[0].rows(0).data(), "view:1:alice");
  EXPECT_EQ(bob->updates()[0].rows(0).data(), "view:1:bob");
  EXPECT_EQ(resolver_->total(), 2);
}

TEST_F(ResolveSchedulerTest, InlineRowsNeedNoResolverAndAreSerializedOnce) {
  auto a = Subscribe("1");
  auto b = Subscribe("1");
  v1::Notice notice;
  *notice.mutable_key() = Key("1");
  notice.set_version(4);
  v1::Row* row = notice.mutable_rows()->add_rows();
  row->set_data("inline");
  scheduler_->OnNotice(notice);
  ASSERT_EQ(a->updates().size(), 1u);
  ASSERT_EQ(b->updates().size(), 1u);
  EXPECT_EQ(a->updates()[0].rows(0).data(), "inline");
  EXPECT_EQ(resolver_->total(), 0);
  // The same bytes (one slice) went to both subscribers.
  std::vector<grpc::Slice> sa, sb;
  ASSERT_TRUE(a->raw()[0].bytes.Dump(&sa).ok());
  ASSERT_TRUE(b->raw()[0].bytes.Dump(&sb).ok());
  ASSERT_EQ(sa.size(), 1u);
  EXPECT_EQ(sa[0].begin(), sb[0].begin());
  // A reordered, older notice is dropped.
  notice.set_version(3);
  notice.mutable_rows()->mutable_rows(0)->set_data("older");
  scheduler_->OnNotice(notice);
  EXPECT_EQ(a->updates().size(), 1u);
}

TEST_F(ResolveSchedulerTest, WildcardSubscriberGetsEveryId) {
  auto wild = std::make_shared<RecordingSubscriber>();
  hub_.Add(Key("*"), wild, "");
  Notice("42");
  ASSERT_TRUE(WaitFor([&] { return resolver_->pending() == 1; }));
  auto c = resolver_->Take();
  ASSERT_EQ(c.request.keys(0).id(), "42");
  c.done(Found(c.request, 1, "x"));
  ASSERT_TRUE(WaitFor([&] { return wild->updates().size() == 1; }));
  EXPECT_EQ(wild->updates()[0].key().id(), "42");
}

TEST_F(ResolveSchedulerTest, ResyncResolvesEverySubscribedKey) {
  auto s1 = Subscribe("1");
  auto s2 = Subscribe("2");
  scheduler_->ResyncAll();
  // The keys may come in one batch or in several (the flush can start
  // between them); answer calls as they come until both were asked for.
  int keys = 0;
  EXPECT_TRUE(WaitFor([&] {
    while (resolver_->pending() > 0) {
      auto c = resolver_->Take();
      keys += c.request.keys_size();
      c.done(Found(c.request, 1, "x"));
    }
    return keys >= 2;
  }));
  EXPECT_EQ(keys, 2);
}

// A reconnect storm: subscriptions waiting for a free call slot share calls
// per credentials, and subscribers of one key share its result; none joins
// the call already in flight.
TEST_F(ResolveSchedulerTest, WaitingSubscribeResolvesShareCalls) {
  Build(/*per_credentials=*/false, /*max_concurrent=*/4,
        /*max_concurrent_subscribe=*/1);
  absl::Mutex mu;
  std::map<std::string, int> snapshots;  // "id/credentials" -> count
  auto subscribe = [&](const std::string& id, const std::string& creds) {
    scheduler_->ResolveForSubscribe(
        Key(id), creds, [&, id, creds](absl::StatusOr<Snapshot> s) {
          ASSERT_TRUE(s.ok()) << s.status();
          EXPECT_EQ(s->rows[0].data(), "v:" + id + ":" + creds);
          absl::MutexLock lock(&mu);
          ++snapshots[id + "/" + creds];
        });
  };
  subscribe("1", "");
  ASSERT_TRUE(WaitFor([&] { return resolver_->pending() == 1; }));
  for (int i = 1; i <= 20; ++i) subscribe(std::to_string(i), "");
  subscribe("2", "");  // the same key again: one result for both
  subscribe("3", "bob");
  subscribe("3", "bob");
  absl::SleepFor(absl::Milliseconds(50));
  EXPECT_EQ(resolver_->total(), 1) << "one call in flight at most";
  auto first = resolver_->Take();
  ASSERT_EQ(first.request.keys_size(), 1);
  first.done(Found(first.request, 1, "v"));
  ASSERT_TRUE(WaitFor([&] { return resolver_->pending() == 1; }));
  auto second = resolver_->Take();
  EXPECT_EQ(second.request.keys_size(), 20)
      << "keys 1..20 (1 again: it may have changed since the first call)";
  EXPECT_EQ(second.request.credentials(), "");
  second.done(Found(second.request, 1, "v"));
  ASSERT_TRUE(WaitFor([&] { return resolver_->pending() == 1; }));
  auto third = resolver_->Take();
  EXPECT_EQ(third.request.credentials(), "bob");
  EXPECT_EQ(third.request.keys_size(), 1);
  third.done(Found(third.request, 1, "v"));
  ASSERT_TRUE(WaitFor([&] {
    absl::MutexLock lock(&mu);
    return snapshots.size() == 21;
  }));
  absl::MutexLock lock(&mu);
  EXPECT_EQ(snapshots["1/"], 2);
  EXPECT_EQ(snapshots["2/"], 2);
  EXPECT_EQ(snapshots["3/bob"], 2);
  EXPECT_EQ(resolver_->total(), 3) << "24 subscriptions, 3 calls";
  EXPECT_EQ(scheduler_->stats().subscribe_calls, 3u);
  EXPECT_EQ(scheduler_->stats().subscribe_requests, 24u);
}

TEST_F(ResolveSchedulerTest, SubscribeResolvePassesCredentialsAndMapsDenial) {
  absl::Mutex mu;
  std::optional<absl::StatusOr<Snapshot>> got;
  scheduler_->ResolveForSubscribe(Key("1"), "secret",
                                  [&](absl::StatusOr<Snapshot> s) {
                                    absl::MutexLock lock(&mu);
                                    got = std::move(s);
                                  });
  ASSERT_TRUE(WaitFor([&] { return resolver_->pending() == 1; }));
  auto c = resolver_->Take();
  EXPECT_EQ(c.request.credentials(), "secret");
  EXPECT_EQ(c.request.reason(), v1::ResolveRequest::SUBSCRIBE);
  v1::ResolveResponse denied;
  *denied.add_results()->mutable_key() = Key("1");
  denied.mutable_results(0)->set_status(v1::ResolvedKey::DENIED);
  c.done(denied);
  absl::MutexLock lock(&mu);
  ASSERT_TRUE(got.has_value());
  EXPECT_EQ(got->status().code(), absl::StatusCode::kPermissionDenied);
}

TEST_F(ResolveSchedulerTest, UnversionedSnapshotDoesNotShadowNoticeVersions) {
  auto s = Subscribe("1");
  auto snapshot_version = [&]() -> uint64_t {
    absl::Mutex mu;
    std::optional<absl::StatusOr<Snapshot>> got;
    scheduler_->ResolveForSubscribe(Key("1"), "",
                                    [&](absl::StatusOr<Snapshot> snap) {
                                      absl::MutexLock lock(&mu);
                                      got = std::move(snap);
                                    });
    EXPECT_TRUE(WaitFor([&] { return resolver_->pending() == 1; }));
    auto c = resolver_->Take();
    c.done(Found(c.request, /*version=*/0, "rows"));
    absl::MutexLock lock(&mu);
    EXPECT_TRUE(got.has_value() && got->ok());
    return got.has_value() && got->ok() ? (*got)->version : 999;
  };
  // Nothing delivered yet: version 0, which any later version supersedes
  // (a replica clock value here would hide notice version 6 below).
  EXPECT_EQ(snapshot_version(), 0u);
  Notice("1", /*version=*/6);
  ASSERT_TRUE(WaitFor([&] { return resolver_->pending() == 1; }));
  auto c = resolver_->Take();
  c.done(Found(c.request, /*version=*/0, "changed"));
  ASSERT_TRUE(WaitFor([&] { return s->updates().size() == 1; }));
  EXPECT_EQ(s->updates()[0].version(), 6u) << "the notice's version";
  EXPECT_EQ(snapshot_version(), 6u) << "later snapshots use what was delivered";
}

TEST_F(ResolveSchedulerTest, WildcardOnlyKeysAreForgottenWithTheWildcard) {
  auto wild = std::make_shared<RecordingSubscriber>();
  hub_.Add(Key("*"), wild, "");
  for (int i = 0; i < 1000; ++i) {
    v1::Notice notice;
    *notice.mutable_key() = Key(std::to_string(i));
    notice.set_version(1);
    notice.mutable_rows()->add_rows()->set_data("x");
    scheduler_->OnNotice(notice);
  }
  EXPECT_EQ(wild->updates().size(), 1000u);
  EXPECT_GE(scheduler_->tracked_keys(), 1000u) << "kept for version ordering";
  hub_.Remove(Key("*"), wild.get());
  scheduler_->Forget(Key("*"));
  EXPECT_EQ(scheduler_->tracked_keys(), 0u) << "state bounded once it leaves";
}

TEST_F(ResolveSchedulerTest, NoRetriesForACredentialThatLeft) {
  Build(/*per_credentials=*/true, 4);
  auto alice = Subscribe("1", "alice");
  auto bob = Subscribe("1", "bob");
  Notice("1");
  ASSERT_TRUE(WaitFor([&] { return resolver_->pending() == 2; }));
  hub_.Remove(Key("1"), alice.get());
  for (int i = 0; i < 2; ++i) {
    auto c = resolver_->Take();
    if (c.request.credentials() == "alice") {
      c.done(absl::UnavailableError("down"));
    } else {
      c.done(Found(c.request, 1, "bob's view"));
    }
  }
  absl::SleepFor(absl::Milliseconds(300));  // Many retry periods.
  EXPECT_EQ(resolver_->total(), 2)
      << "alice's key is not retried after she left";
  ASSERT_EQ(bob->updates().size(), 1u);
}

}  // namespace
}  // namespace entitysync
