#include "bench/key_space.h"

#include <set>

#include "gtest/gtest.h"

namespace entitysync {
namespace bench {
namespace {

TEST(KeySpaceTest, NumberedIdsRoundTrip) {
  const KeySpace keys = KeySpace::Numbered(5000);
  EXPECT_EQ(keys.size(), 5000u);
  EXPECT_EQ(keys.Id(0), "0");
  EXPECT_EQ(keys.Id(4999), "4999");
  EXPECT_EQ(keys.Index("4999"), 4999u);
  EXPECT_EQ(keys.Index("0"), 0u);
}

TEST(KeySpaceTest, OnlyCanonicalIdsInTheSpaceHaveAnIndex) {
  const KeySpace keys = KeySpace::Numbered(100);
  for (const char* id : {"100", "01", "-1", "+1", " 1", "1 ", "", "u1", "x",
                         "99999999999999999999"}) {
    EXPECT_FALSE(keys.Index(id).has_value()) << id;
  }
}

TEST(KeySpaceTest, StreamsSubscribeToConsecutiveIdsModuloTheSpace) {
  const KeySpace keys = KeySpace::Numbered(5000);
  EXPECT_EQ(keys.KeysOfStream(0, 10),
            (std::vector<uint64_t>{0, 1, 2, 3, 4, 5, 6, 7, 8, 9}));
  // (g*K + j) % M
  EXPECT_EQ(keys.KeysOfStream(499, 10),
            (std::vector<uint64_t>{4990, 4991, 4992, 4993, 4994, 4995, 4996,
                                   4997, 4998, 4999}));
  EXPECT_EQ(keys.KeysOfStream(1666, 3), (std::vector<uint64_t>{4998, 4999, 0}));
}

TEST(KeySpaceTest, MoreKeysPerStreamThanTheSpaceHasAreNotRepeated) {
  const KeySpace keys = KeySpace::Numbered(3);
  const std::vector<uint64_t> subscribed = keys.KeysOfStream(1, 10);
  EXPECT_EQ(subscribed.size(), 3u);
  EXPECT_EQ(std::set<uint64_t>(subscribed.begin(), subscribed.end()).size(),
            3u);
}

TEST(KeySpaceTest, PersonalGroupHasAUserKeyPerStreamAndAGroupKeyPerGroup) {
  const KeySpace keys = KeySpace::PersonalGroup(25, 10);
  EXPECT_EQ(keys.size(), 25u + 3u);
  EXPECT_EQ(keys.Id(0), "u0");
  EXPECT_EQ(keys.Id(24), "u24");
  EXPECT_EQ(keys.Id(25), "g0");
  EXPECT_EQ(keys.Id(27), "g2");
  EXPECT_EQ(keys.Index("u24"), 24u);
  EXPECT_EQ(keys.Index("g2"), 27u);
  EXPECT_FALSE(keys.Index("u25").has_value());
  EXPECT_FALSE(keys.Index("g3").has_value());
  EXPECT_FALSE(keys.Index("7").has_value());
  // Stream 23 is user 23 in group 2.
  EXPECT_EQ(keys.KeysOfStream(23, 99), (std::vector<uint64_t>{23, 27}));
  for (uint64_t i = 0; i < keys.size(); ++i) {
    EXPECT_EQ(keys.Index(keys.Id(i)), i);
  }
}

}  // namespace
}  // namespace bench
}  // namespace entitysync
