#include "common/utf8.h"

#include <string>

#include "gtest/gtest.h"

namespace entitysync {
namespace {

TEST(Utf8Test, StrictValidation) {
  EXPECT_TRUE(IsValidUtf8("plain"));
  EXPECT_TRUE(IsValidUtf8("\xe2\x9c\x93"));
  EXPECT_FALSE(IsValidUtf8("\xc0\xaf"));      // Overlong.
  EXPECT_FALSE(IsValidUtf8("\xed\xa0\x80"));  // Surrogate.
  EXPECT_FALSE(IsValidUtf8("\xe2\x9c"));      // Truncated.
  EXPECT_TRUE(IsValidUtf8(std::string("a\0b", 3)));
}

TEST(Utf8Test, SequenceLength) {
  EXPECT_EQ(Utf8SequenceLength("a"), 1u);
  EXPECT_EQ(Utf8SequenceLength("\xe2\x9c\x93x"), 3u);
  EXPECT_EQ(Utf8SequenceLength("\xff"), 0u);
  EXPECT_EQ(Utf8SequenceLength(""), 0u);
}

}  // namespace
}  // namespace entitysync
