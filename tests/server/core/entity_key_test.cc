#include "server/core/entity_key.h"

#include <string>
#include <vector>

#include "gtest/gtest.h"

namespace entitysync {
namespace {

v1::EntityKey Key(const std::string& entity, const std::string& id) {
  v1::EntityKey key;
  key.set_entity(entity);
  key.set_id(id);
  return key;
}

TEST(EntityKeyTest, AcceptsOrdinaryAndUnusualIds) {
  Limits limits;
  for (const std::string& id :
       std::vector<std::string>{"100", "with space", "a.b.c", ">", "ünïcødé ✓",
                                std::string(1024, 'x')}) {
    EXPECT_TRUE(ValidateKey(Key("items", id), limits, KeyUse::kNotify).ok())
        << id;
  }
  EXPECT_TRUE(ValidateKey(Key("items", "*"), limits, KeyUse::kSubscribe).ok());
}

TEST(EntityKeyTest, RejectsBadKeysWithPreciseMessages) {
  Limits limits;
  struct Case {
    v1::EntityKey key;
    KeyUse use;
    const char* expect;
  } cases[] = {
      {Key("", "1"), KeyUse::kSubscribe, "entity is empty"},
      {Key("items", ""), KeyUse::kSubscribe, "id is empty"},
      {Key(std::string(65, 'e'), "1"), KeyUse::kSubscribe,
       "65 bytes; the limit is 64"},
      {Key("items", std::string(1025, 'x')), KeyUse::kSubscribe, "1025 bytes"},
      {Key("it.ems", "1"), KeyUse::kSubscribe, "may contain only"},
      {Key("items/x", "1"), KeyUse::kSubscribe, "may contain only"},
      {Key("items", "\xff\xfe"), KeyUse::kSubscribe, "not valid UTF-8"},
      {Key("items", "*"), KeyUse::kNotify, "wildcard"},
  };
  for (const Case& c : cases) {
    absl::Status s = ValidateKey(c.key, limits, c.use);
    EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << c.expect;
    EXPECT_NE(s.message().find(c.expect), std::string::npos) << s;
  }
}

TEST(EntityKeyTest, KeyStringSplitsAtTheFirstSlash) {
  EXPECT_EQ(KeyString(Key("items", "a/b")), "items/a/b");
  EXPECT_EQ(EntityOfKeyString("items/a/b"), "items");
  EXPECT_TRUE(IsWildcard(Key("items", "*")));
  EXPECT_EQ(DescribeKey(Key("items", std::string(100, 'x'))).size(),
            std::string("items/").size() + 64 + 3);
}

TEST(EntityKeyTest, KeyOfKeyStringGivesTheKeyBack) {
  for (const v1::EntityKey& key :
       {Key("items", "a/b"), Key("items", "*"), Key("items", " /\n\0x"),
        Key("e", std::string("nul\0inside", 10))}) {
    const v1::EntityKey back = KeyOfKeyString(KeyString(key));
    EXPECT_EQ(back.entity(), key.entity());
    EXPECT_EQ(back.id(), key.id());
  }
}

}  // namespace
}  // namespace entitysync
