#include "tests/adapters/bus/bus_conformance.h"

#include <string>
#include <vector>

#include "absl/synchronization/mutex.h"
#include "tests/testing/wait.h"

namespace entitysync::testing {
namespace {

// Records what a bus delivers.
class Inbox {
 public:
  BusHandlers Handlers() {
    BusHandlers h;
    h.on_notice = [this](const v1::Notice& n) {
      absl::MutexLock lock(&mu_);
      notices_.push_back(n);
    };
    h.on_state = [this](BusState s) {
      absl::MutexLock lock(&mu_);
      states_.push_back(s);
    };
    h.on_resync = [] {};
    return h;
  }
  std::vector<std::string> Ids() const {
    absl::MutexLock lock(&mu_);
    std::vector<std::string> ids;
    for (const auto& n : notices_)
      ids.push_back(n.key().entity() + "/" + n.key().id());
    return ids;
  }
  std::vector<v1::Notice> Notices() const {
    absl::MutexLock lock(&mu_);
    return notices_;
  }
  bool SawConnected() const {
    absl::MutexLock lock(&mu_);
    for (BusState s : states_) {
      if (s == BusState::kConnected) return true;
    }
    return false;
  }

 private:
  mutable absl::Mutex mu_;
  std::vector<v1::Notice> notices_;
  std::vector<BusState> states_;
};

v1::Notice MakeNotice(const std::string& entity, const std::string& id,
                      uint64_t version = 0) {
  v1::Notice n;
  n.mutable_key()->set_entity(entity);
  n.mutable_key()->set_id(id);
  if (version > 0) n.set_version(version);
  n.set_origin("test");
  return n;
}

// Publishes a sentinel to a key with interest and waits for it: after that,
// anything published before it that was going to arrive has arrived (notices
// between one publisher and one subscriber stay in order).
void Flush(Bus& publisher, Bus& subscriber, Inbox& inbox) {
  static int round = 0;
  const std::string id = "sentinel-" + std::to_string(++round);
  subscriber.AddInterest("flush", id);
  absl::SleepFor(absl::Milliseconds(20));
  ASSERT_TRUE(publisher.Publish(MakeNotice("flush", id)).ok());
  ASSERT_TRUE(WaitFor([&] {
    for (const auto& got : inbox.Ids()) {
      if (got == "flush/" + id) return true;
    }
    return false;
  }));
  subscriber.RemoveInterest("flush", id);
}

class Fixture {
 public:
  explicit Fixture(const BusFactory& f) {
    sub = f.make();
    EXPECT_TRUE(sub->Start(sub_inbox.Handlers()).ok());
    if (f.shared_medium) {
      pub_owned = f.make();
      EXPECT_TRUE(pub_owned->Start(pub_inbox.Handlers()).ok());
      pub = pub_owned.get();
    } else {
      pub = sub.get();
    }
    EXPECT_TRUE(WaitFor([&] { return sub->state() == BusState::kConnected; }));
    EXPECT_TRUE(WaitFor([&] { return pub->state() == BusState::kConnected; }));
  }
  ~Fixture() {
    if (pub_owned) pub_owned->Stop();
    sub->Stop();
  }
  std::vector<std::string> Received() {
    std::vector<std::string> out;
    for (const auto& id : sub_inbox.Ids()) {
      if (id.rfind("flush/", 0) != 0) out.push_back(id);
    }
    return out;
  }

  Inbox sub_inbox, pub_inbox;
  std::unique_ptr<Bus> sub, pub_owned;
  Bus* pub = nullptr;
};

TEST_P(BusConformanceTest, ReportsConnectedAfterStart) {
  Fixture f(GetParam());
  EXPECT_TRUE(WaitFor([&] { return f.sub_inbox.SawConnected(); }));
}

TEST_P(BusConformanceTest, DeliversOnlyKeysWithInterest) {
  Fixture f(GetParam());
  f.sub->AddInterest("items", "1");
  absl::SleepFor(absl::Milliseconds(20));
  ASSERT_TRUE(f.pub->Publish(MakeNotice("items", "1", 7)).ok());
  ASSERT_TRUE(f.pub->Publish(MakeNotice("items", "2")).ok());
  ASSERT_TRUE(f.pub->Publish(MakeNotice("users", "1")).ok());
  Flush(*f.pub, *f.sub, f.sub_inbox);
  EXPECT_EQ(f.Received(), std::vector<std::string>({"items/1"}));
  auto notices = f.sub_inbox.Notices();
  ASSERT_FALSE(notices.empty());
  EXPECT_EQ(notices[0].version(), 7u);
  EXPECT_EQ(notices[0].origin(), "test");
}

TEST_P(BusConformanceTest, WildcardInterestReceivesEveryIdOfTheEntity) {
  Fixture f(GetParam());
  f.sub->AddInterest("items", "*");
  absl::SleepFor(absl::Milliseconds(20));
  for (const char* id : {"1", "2", "three"}) {
    ASSERT_TRUE(f.pub->Publish(MakeNotice("items", id)).ok());
  }
  ASSERT_TRUE(f.pub->Publish(MakeNotice("users", "1")).ok());
  Flush(*f.pub, *f.sub, f.sub_inbox);
  EXPECT_EQ(f.Received(),
            std::vector<std::string>({"items/1", "items/2", "items/three"}));
}

TEST_P(BusConformanceTest, RemovedInterestStopsDelivery) {
  Fixture f(GetParam());
  f.sub->AddInterest("items", "1");
  absl::SleepFor(absl::Milliseconds(20));
  f.sub->RemoveInterest("items", "1");
  absl::SleepFor(absl::Milliseconds(20));
  ASSERT_TRUE(f.pub->Publish(MakeNotice("items", "1")).ok());
  Flush(*f.pub, *f.sub, f.sub_inbox);
  EXPECT_TRUE(f.Received().empty());
}

TEST_P(BusConformanceTest, UnusualIdsRouteOnlyToTheirOwnKey) {
  Fixture f(GetParam());
  const std::vector<std::string> ids = {
      "with space",          "a.b",      "*x", ">", "a.>", "ünï ✓",
      std::string(512, 'z'), "tab\there"};
  for (const auto& id : ids) f.sub->AddInterest("items", id);
  absl::SleepFor(absl::Milliseconds(50));
  // Near misses that a careless subject mapping would confuse.
  for (const char* other : {"a", "b", "with", "space", "a.c", "x"}) {
    ASSERT_TRUE(f.pub->Publish(MakeNotice("items", other)).ok());
  }
  for (const auto& id : ids)
    ASSERT_TRUE(f.pub->Publish(MakeNotice("items", id)).ok());
  Flush(*f.pub, *f.sub, f.sub_inbox);
  std::vector<std::string> expected;
  for (const auto& id : ids) expected.push_back("items/" + id);
  EXPECT_EQ(f.Received(), expected);
}

TEST_P(BusConformanceTest, NoDeliveryAfterStop) {
  Fixture f(GetParam());
  f.sub->AddInterest("items", "1");
  absl::SleepFor(absl::Milliseconds(20));
  f.sub->Stop();
  // Publishing on a stopped bus may fail; it must not deliver or crash.
  (void)f.pub->Publish(MakeNotice("items", "1"));
  absl::SleepFor(absl::Milliseconds(50));
  EXPECT_TRUE(f.Received().empty());
}

}  // namespace
}  // namespace entitysync::testing
