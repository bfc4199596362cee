#include "examples/items/items_store.h"

#include <cstdio>
#include <cstdlib>
#include <memory>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace entitysync::examples {
namespace {

using ::testing::ElementsAre;
using ::testing::IsEmpty;

std::string TempDbPath(absl::string_view name) {
  const char* dir = std::getenv("TEST_TMPDIR");
  std::string path = absl::StrCat(
      dir != nullptr ? dir : "/tmp", "/", name, "_",
      ::testing::UnitTest::GetInstance()->current_test_info()->name(), ".db");
  std::remove(path.c_str());
  std::remove((path + "-wal").c_str());
  std::remove((path + "-shm").c_str());
  return path;
}

std::unique_ptr<ItemsStore> OpenOrDie(const std::string& path) {
  absl::StatusOr<std::unique_ptr<ItemsStore>> store = ItemsStore::Open(path);
  EXPECT_TRUE(store.ok()) << store.status();
  return store.ok() ? *std::move(store) : nullptr;
}

ItemChange Named(std::string id, std::string name) {
  ItemChange change;
  change.id = std::move(id);
  change.name = std::move(name);
  return change;
}

TEST(ItemsStoreTest, FindsWhatWasWrittenWithTagsInOrder) {
  std::unique_ptr<ItemsStore> store = OpenOrDie(TempDbPath("store"));
  ASSERT_NE(store, nullptr);
  ItemChange change = Named("100", "Espresso cup");
  change.price_cents = 450;
  change.tags = std::vector<std::string>{"zebra", "apple", "mango"};
  change.acl = std::vector<std::string>{"s1", "s2"};
  absl::StatusOr<uint64_t> version = store->Upsert(change);
  ASSERT_TRUE(version.ok()) << version.status();
  EXPECT_EQ(*version, 1u);

  absl::StatusOr<std::optional<Item>> item = store->Find("100");
  ASSERT_TRUE(item.ok()) << item.status();
  ASSERT_TRUE(item->has_value());
  EXPECT_EQ((*item)->name, "Espresso cup");
  EXPECT_EQ((*item)->price_cents, 450);
  EXPECT_EQ((*item)->version, 1u);
  EXPECT_FALSE((*item)->deleted);
  // Insertion order, not alphabetical.
  EXPECT_THAT((*item)->tags, ElementsAre("zebra", "apple", "mango"));
  EXPECT_THAT((*item)->acl, ElementsAre("s1", "s2"));
}

TEST(ItemsStoreTest, UnknownIdIsNullopt) {
  std::unique_ptr<ItemsStore> store = OpenOrDie(TempDbPath("store"));
  ASSERT_NE(store, nullptr);
  absl::StatusOr<std::optional<Item>> item = store->Find("nope");
  ASSERT_TRUE(item.ok()) << item.status();
  EXPECT_FALSE(item->has_value());
}

TEST(ItemsStoreTest, PartialUpdateKeepsOtherFieldsAndReplacesTags) {
  std::unique_ptr<ItemsStore> store = OpenOrDie(TempDbPath("store"));
  ASSERT_NE(store, nullptr);
  ItemChange create = Named("7", "Lamp");
  create.price_cents = 2999;
  create.tags = std::vector<std::string>{"a", "b", "c"};
  ASSERT_TRUE(store->Upsert(create).ok());

  ItemChange reprice;
  reprice.id = "7";
  reprice.price_cents = 1999;
  ASSERT_TRUE(store->Upsert(reprice).ok());
  absl::StatusOr<std::optional<Item>> item = store->Find("7");
  ASSERT_TRUE(item.ok() && item->has_value());
  EXPECT_EQ((*item)->name, "Lamp");
  EXPECT_EQ((*item)->price_cents, 1999);
  EXPECT_THAT((*item)->tags, ElementsAre("a", "b", "c"));

  ItemChange retag;
  retag.id = "7";
  retag.tags = std::vector<std::string>{"x"};
  ASSERT_TRUE(store->Upsert(retag).ok());
  item = store->Find("7");
  ASSERT_TRUE(item.ok() && item->has_value());
  EXPECT_THAT((*item)->tags, ElementsAre("x"));
}

TEST(ItemsStoreTest, VersionsOnlyIncreaseAcrossSetDeleteAndRecreate) {
  std::unique_ptr<ItemsStore> store = OpenOrDie(TempDbPath("store"));
  ASSERT_NE(store, nullptr);
  ItemChange change = Named("1", "one");
  change.tags = std::vector<std::string>{"old-tag"};
  change.acl = std::vector<std::string>{"secret"};
  absl::StatusOr<uint64_t> v1 = store->Upsert(change);
  absl::StatusOr<uint64_t> v2 = store->Upsert(Named("1", "uno"));
  ASSERT_TRUE(v1.ok() && v2.ok());
  EXPECT_GT(*v2, *v1);

  absl::StatusOr<uint64_t> deleted = store->Delete("1");
  ASSERT_TRUE(deleted.ok()) << deleted.status();
  EXPECT_GT(*deleted, *v2);
  absl::StatusOr<std::optional<Item>> tombstone = store->Find("1");
  ASSERT_TRUE(tombstone.ok() && tombstone->has_value());
  EXPECT_TRUE((*tombstone)->deleted);
  EXPECT_EQ((*tombstone)->version, *deleted);

  // Deleting twice is an error and does not move the version.
  EXPECT_EQ(store->Delete("1").status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(store->Delete("never").status().code(),
            absl::StatusCode::kNotFound);

  ItemChange recreate;
  recreate.id = "1";
  absl::StatusOr<uint64_t> v3 = store->Upsert(recreate);
  ASSERT_TRUE(v3.ok());
  EXPECT_GT(*v3, *deleted);
  // A re-created item starts from scratch: nothing of the old one survives.
  absl::StatusOr<std::optional<Item>> item = store->Find("1");
  ASSERT_TRUE(item.ok() && item->has_value());
  EXPECT_FALSE((*item)->deleted);
  EXPECT_EQ((*item)->name, "");
  EXPECT_THAT((*item)->tags, IsEmpty());
  EXPECT_THAT((*item)->acl, IsEmpty());
}

TEST(ItemsStoreTest, VersionsSurviveReopen) {
  std::string path = TempDbPath("store");
  uint64_t before;
  {
    std::unique_ptr<ItemsStore> store = OpenOrDie(path);
    ASSERT_NE(store, nullptr);
    ASSERT_TRUE(store->Upsert(Named("a", "A")).ok());
    absl::StatusOr<uint64_t> deleted = store->Delete("a");
    ASSERT_TRUE(deleted.ok());
    before = *deleted;
  }
  std::unique_ptr<ItemsStore> store = OpenOrDie(path);
  ASSERT_NE(store, nullptr);
  absl::StatusOr<uint64_t> after = store->Upsert(Named("a", "A again"));
  ASSERT_TRUE(after.ok());
  EXPECT_GT(*after, before);
}

TEST(ItemsStoreTest, RejectsBadInput) {
  std::unique_ptr<ItemsStore> store = OpenOrDie(TempDbPath("store"));
  ASSERT_NE(store, nullptr);
  EXPECT_EQ(store->Upsert(Named("", "x")).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(store->Upsert(Named("*", "x")).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(store->Upsert(Named(std::string(1025, 'a'), "x")).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(store->Upsert(Named("\xff", "x")).status().code(),
            absl::StatusCode::kInvalidArgument);
  ItemChange bad_acl = Named("1", "x");
  bad_acl.acl = std::vector<std::string>{"a,b"};
  EXPECT_EQ(store->Upsert(bad_acl).status().code(),
            absl::StatusCode::kInvalidArgument);
  bad_acl.acl = std::vector<std::string>{""};
  EXPECT_EQ(store->Upsert(bad_acl).status().code(),
            absl::StatusCode::kInvalidArgument);
}

TEST(ItemsStoreTest, ListLiveFiltersLimitsAndReportsMaxVersion) {
  std::unique_ptr<ItemsStore> store = OpenOrDie(TempDbPath("store"));
  ASSERT_NE(store, nullptr);
  for (const char* id : {"c", "a", "d", "b"}) {
    ASSERT_TRUE(store->Upsert(Named(id, id)).ok());
  }
  absl::StatusOr<uint64_t> deleted = store->Delete("d");
  ASSERT_TRUE(deleted.ok());

  absl::StatusOr<ItemListing> all =
      store->ListLive([](const Item&) { return true; }, 100);
  ASSERT_TRUE(all.ok()) << all.status();
  std::vector<std::string> ids;
  for (const Item& item : all->items) ids.push_back(item.id);
  EXPECT_THAT(ids, ElementsAre("a", "b", "c"));
  // The delete is the latest write, so it defines the listing's version.
  EXPECT_EQ(all->max_version, *deleted);

  absl::StatusOr<ItemListing> limited =
      store->ListLive([](const Item& item) { return item.id != "a"; }, 1);
  ASSERT_TRUE(limited.ok());
  ASSERT_EQ(limited->items.size(), 1u);
  EXPECT_EQ(limited->items[0].id, "b");
}

TEST(ItemsStoreTest, InsertIfEmptyOnlyOnce) {
  std::unique_ptr<ItemsStore> store = OpenOrDie(TempDbPath("store"));
  ASSERT_NE(store, nullptr);
  std::vector<ItemChange> seed = {Named("1", "one"), Named("2", "two")};
  absl::StatusOr<bool> first = store->InsertIfEmpty(seed);
  ASSERT_TRUE(first.ok()) << first.status();
  EXPECT_TRUE(*first);
  ASSERT_TRUE(store->Upsert(Named("1", "changed")).ok());
  absl::StatusOr<bool> second = store->InsertIfEmpty(seed);
  ASSERT_TRUE(second.ok());
  EXPECT_FALSE(*second);
  absl::StatusOr<std::optional<Item>> item = store->Find("1");
  ASSERT_TRUE(item.ok() && item->has_value());
  EXPECT_EQ((*item)->name, "changed");
}

// Two store instances (as the resolver process and `items set` would be)
// writing the same file at once: no write fails with "database is locked",
// and every write gets its own version.
TEST(ItemsStoreTest, TwoInstancesOnOneFileWriteConcurrently) {
  std::string path = TempDbPath("store");
  std::unique_ptr<ItemsStore> first = OpenOrDie(path);
  std::unique_ptr<ItemsStore> second = OpenOrDie(path);
  ASSERT_NE(first, nullptr);
  ASSERT_NE(second, nullptr);

  constexpr int kWritesPerThread = 200;
  std::vector<uint64_t> versions[2];
  absl::Status errors[2];
  auto writer = [&](ItemsStore* store, int index) {
    for (int i = 0; i < kWritesPerThread; ++i) {
      // Both threads write the same ten ids.
      ItemChange change = Named(absl::StrCat(i % 10), absl::StrCat(index));
      change.tags = std::vector<std::string>{absl::StrCat(i), "t"};
      absl::StatusOr<uint64_t> version = store->Upsert(change);
      if (!version.ok()) {
        errors[index] = version.status();
        return;
      }
      versions[index].push_back(*version);
      // Reads run between the other instance's writes.
      absl::StatusOr<std::optional<Item>> item = store->Find(change.id);
      if (!item.ok()) {
        errors[index] = item.status();
        return;
      }
    }
  };
  std::thread a(writer, first.get(), 0);
  std::thread b(writer, second.get(), 1);
  a.join();
  b.join();
  ASSERT_TRUE(errors[0].ok()) << errors[0];
  ASSERT_TRUE(errors[1].ok()) << errors[1];

  std::set<uint64_t> distinct;
  for (const auto& list : versions) {
    for (size_t i = 1; i < list.size(); ++i) EXPECT_GT(list[i], list[i - 1]);
    distinct.insert(list.begin(), list.end());
  }
  EXPECT_EQ(distinct.size(), 2u * kWritesPerThread);

  // Each instance sees the other's last writes, with whole tag lists.
  absl::StatusOr<ItemListing> listing =
      first->ListLive([](const Item&) { return true; }, 100);
  ASSERT_TRUE(listing.ok());
  EXPECT_EQ(listing->items.size(), 10u);
  EXPECT_EQ(listing->max_version, 2u * kWritesPerThread);
  for (const Item& item : listing->items) EXPECT_EQ(item.tags.size(), 2u);
}

}  // namespace
}  // namespace entitysync::examples
