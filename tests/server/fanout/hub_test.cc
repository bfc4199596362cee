#include "server/fanout/hub.h"

#include <memory>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "gtest/gtest.h"
#include "tests/testing/recording_subscriber.h"

namespace entitysync {
namespace {

using testing::RecordingSubscriber;

v1::EntityKey Key(const std::string& entity, const std::string& id) {
  v1::EntityKey key;
  key.set_entity(entity);
  key.set_id(id);
  return key;
}

class RecordingListener : public InterestListener {
 public:
  void AddInterest(const std::string& entity, const std::string& id) override {
    events.push_back("+" + entity + "/" + id);
  }
  void RemoveInterest(const std::string& entity,
                      const std::string& id) override {
    events.push_back("-" + entity + "/" + id);
  }
  std::vector<std::string> events;
};

TEST(HubTest, InterestFollowsFirstAndLastSubscriber) {
  RecordingListener listener;
  Hub hub(&listener);
  auto a = std::make_shared<RecordingSubscriber>();
  auto b = std::make_shared<RecordingSubscriber>();
  EXPECT_TRUE(hub.Add(Key("items", "1"), a, ""));
  EXPECT_TRUE(hub.Add(Key("items", "1"), b, ""));
  EXPECT_FALSE(hub.Add(Key("items", "1"), a, "")) << "re-adding is not new";
  EXPECT_EQ(listener.events, std::vector<std::string>({"+items/1"}));
  EXPECT_TRUE(hub.Remove(Key("items", "1"), a.get()));
  EXPECT_EQ(listener.events.size(), 1u) << "b still subscribes";
  EXPECT_TRUE(hub.Remove(Key("items", "1"), b.get()));
  EXPECT_FALSE(hub.Remove(Key("items", "1"), b.get()));
  EXPECT_EQ(listener.events,
            std::vector<std::string>({"+items/1", "-items/1"}));
  EXPECT_EQ(hub.key_count(), 0u);
  EXPECT_EQ(hub.subscription_count(), 0u);
}

TEST(HubTest, LookupIncludesWildcardSubscribersOnce) {
  Hub hub(nullptr);
  auto exact = std::make_shared<RecordingSubscriber>();
  auto wild = std::make_shared<RecordingSubscriber>();
  auto both = std::make_shared<RecordingSubscriber>();
  hub.Add(Key("items", "1"), exact, "e");
  hub.Add(Key("items", "*"), wild, "w");
  hub.Add(Key("items", "1"), both, "b-exact");
  hub.Add(Key("items", "*"), both, "b-wild");
  hub.Add(Key("users", "1"), std::make_shared<RecordingSubscriber>(), "");

  std::vector<SubscriberRef> refs = hub.Lookup(Key("items", "1"));
  std::set<Subscriber*> got;
  for (const auto& r : refs) got.insert(r.subscriber.get());
  EXPECT_EQ(refs.size(), 3u);
  EXPECT_EQ(got, (std::set<Subscriber*>{exact.get(), wild.get(), both.get()}));
  for (const auto& r : refs) {
    if (r.subscriber == both) {
      EXPECT_EQ(*r.credentials, "b-exact");
    }
  }
  // Another id of the entity reaches only the wildcard holders.
  EXPECT_EQ(hub.Lookup(Key("items", "2")).size(), 2u);
  EXPECT_TRUE(hub.HasSubscribers(Key("items", "999")));
  EXPECT_FALSE(hub.HasSubscribers(Key("orders", "1")));
  // The wildcard key itself reaches only wildcard subscribers.
  EXPECT_EQ(hub.Lookup(Key("items", "*")).size(), 2u);
}

TEST(HubTest, SubscribersComeAndGoInAnyOrder) {
  Hub hub(nullptr);
  auto a = std::make_shared<RecordingSubscriber>();
  auto b = std::make_shared<RecordingSubscriber>();
  auto c = std::make_shared<RecordingSubscriber>();
  const v1::EntityKey key = Key("items", "1");
  auto credentials_of = [&](const Subscriber* s) {
    for (const SubscriberRef& ref : hub.Lookup(key)) {
      if (ref.subscriber.get() == s) return *ref.credentials;
    }
    return std::string("(absent)");
  };

  EXPECT_TRUE(hub.Add(key, a, "x"));
  EXPECT_FALSE(hub.Add(key, a, "y"));  // refreshed, not added twice
  EXPECT_EQ(credentials_of(a.get()), "y");
  EXPECT_FALSE(hub.Remove(key, b.get()));
  EXPECT_TRUE(hub.Add(key, b, "b"));
  EXPECT_TRUE(hub.Add(key, c, "c"));
  EXPECT_EQ(hub.Lookup(key).size(), 3u);
  EXPECT_EQ(hub.subscription_count(), 3u);
  EXPECT_TRUE(hub.Remove(key, a.get()));
  EXPECT_FALSE(hub.Remove(key, a.get()));
  EXPECT_EQ(credentials_of(a.get()), "(absent)");
  EXPECT_EQ(credentials_of(b.get()), "b");
  EXPECT_EQ(credentials_of(c.get()), "c");
  EXPECT_TRUE(hub.Remove(key, b.get()));
  EXPECT_TRUE(hub.Remove(key, c.get()));
  EXPECT_FALSE(hub.HasSubscribers(key));
  EXPECT_EQ(hub.key_count(), 0u);
  EXPECT_EQ(hub.subscription_count(), 0u);
  EXPECT_TRUE(hub.Add(key, c, "again"));
  EXPECT_EQ(credentials_of(c.get()), "again");
}

TEST(HubTest, KeysListsEverySubscribedKey) {
  Hub hub(nullptr, 4);
  auto s = std::make_shared<RecordingSubscriber>();
  for (int i = 0; i < 100; ++i) hub.Add(Key("items", std::to_string(i)), s, "");
  hub.Add(Key("items", "*"), s, "");
  EXPECT_EQ(hub.Keys().size(), 101u);
  EXPECT_EQ(hub.subscription_count(), 101u);
}

TEST(HubTest, HubKeepsSubscriberAliveUntilRemoved) {
  Hub hub(nullptr);
  auto s = std::make_shared<RecordingSubscriber>();
  std::weak_ptr<RecordingSubscriber> weak = s;
  hub.Add(Key("items", "1"), std::move(s), "");
  EXPECT_FALSE(weak.expired());
  hub.Remove(Key("items", "1"), weak.lock().get());
  EXPECT_TRUE(weak.expired());
}

}  // namespace
}  // namespace entitysync
