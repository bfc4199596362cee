#include "adapters/bus/subject_token.h"

#include <string>
#include <vector>

#include "gtest/gtest.h"

namespace entitysync {
namespace {

bool IsSingleValidToken(const std::string& token) {
  if (token.empty() || token == "*" || token == ">") return false;
  for (char c : token) {
    const unsigned char b = static_cast<unsigned char>(c);
    if (c == '.' || c == '*' || c == '>' || b <= 0x20 || b >= 0x7f) {
      return false;
    }
  }
  return true;
}

TEST(SubjectTokenTest, EveryIdBecomesOneValidTokenAndRoundTrips) {
  std::vector<std::string> ids = {
      "100", "with space", "a.b.c",     "*",        ">",    "a.>",
      "~7E", "ünïcødé ✓",  "tab\there", "CR\r\nLF", "x_y-z"};
  ids.push_back(std::string("nul\0byte", 8));
  ids.push_back(std::string(512, 'z'));
  std::string all_bytes;
  for (int b = 1; b < 256; ++b) all_bytes.push_back(static_cast<char>(b));
  ids.push_back(all_bytes);
  for (const std::string& id : ids) {
    const std::string token = EncodeSubjectToken(id);
    EXPECT_TRUE(IsSingleValidToken(token)) << token;
    EXPECT_LE(token.size(), 3 * id.size());
    auto decoded = DecodeSubjectToken(token);
    ASSERT_TRUE(decoded.has_value()) << token;
    EXPECT_EQ(*decoded, id);
  }
}

TEST(SubjectTokenTest, PlainIdsStayReadableAndDistinctIdsStayDistinct) {
  EXPECT_EQ(EncodeSubjectToken("item_100-A"), "item_100-A");
  EXPECT_EQ(EncodeSubjectToken("a.b"), "a~2Eb");
  EXPECT_NE(EncodeSubjectToken("a.b"), EncodeSubjectToken("a~2Eb"));
  EXPECT_EQ(KeySubject("es", "items", "a b"), "es.items.a~20b");
  EXPECT_EQ(KeySubject("es", "items", "*"), "es.items.*");
}

TEST(SubjectTokenTest, DecodeRejectsWhatEncodeNeverMakes) {
  for (const char* bad : {"~", "~4", "~zz", "a.b", "~41" /* 'A' is plain */,
                          "~2e" /* lower-case hex */}) {
    EXPECT_FALSE(DecodeSubjectToken(bad).has_value()) << bad;
  }
}

}  // namespace
}  // namespace entitysync
