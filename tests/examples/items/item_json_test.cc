#include "examples/items/item_json.h"

#include <string>

#include "common/utf8.h"
#include "gtest/gtest.h"

namespace entitysync::examples {
namespace {

std::string Quoted(absl::string_view text) {
  std::string out;
  AppendJsonString(text, &out);
  return out;
}

TEST(ItemJsonTest, ItemRowHasTheDocumentedShape) {
  Item item;
  item.id = "100";
  item.name = "Espresso cup";
  item.price_cents = -450;
  item.version = 12;
  item.tags = {"ignored"};
  item.acl = {"ignored"};
  EXPECT_EQ(ItemJson(item),
            R"({"id":"100","name":"Espresso cup","price_cents":-450,)"
            R"("version":12})");
  EXPECT_EQ(TagJson("kitchen"), R"({"tag":"kitchen"})");
}

TEST(ItemJsonTest, EscapesQuotesBackslashesAndControlCharacters) {
  EXPECT_EQ(Quoted("a\"b\\c"), R"("a\"b\\c")");
  EXPECT_EQ(Quoted("\n\r\t\b\f"), R"("\n\r\t\b\f")");
  EXPECT_EQ(Quoted(std::string("\0\x01\x1f", 3)), R"("\u0000\u0001\u001f")");
  EXPECT_EQ(Quoted("</script>"), R"("</script>")");
}

TEST(ItemJsonTest, KeepsValidUtf8AndReplacesInvalidBytes) {
  EXPECT_EQ(Quoted("caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x8d\xb5"),
            "\"caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x8d\xb5\"");
  EXPECT_EQ(Quoted("a\xff"
                   "b"),
            R"("a\ufffdb")");
  // Truncated sequence, overlong form, surrogate.
  EXPECT_EQ(Quoted("\xe2\x82"), R"("\ufffd\ufffd")");
  EXPECT_EQ(Quoted("\xc0\xaf"), R"("\ufffd\ufffd")");
  EXPECT_EQ(Quoted("\xed\xa0\x80"), R"("\ufffd\ufffd\ufffd")");
}

TEST(Utf8Test, Validates) {
  EXPECT_TRUE(IsValidUtf8(""));
  EXPECT_TRUE(IsValidUtf8("plain"));
  EXPECT_TRUE(IsValidUtf8("\xf4\x8f\xbf\xbf"));   // U+10FFFF
  EXPECT_FALSE(IsValidUtf8("\xf4\x90\x80\x80"));  // above U+10FFFF
  EXPECT_FALSE(IsValidUtf8("\xe0\x80\x80"));      // overlong
  EXPECT_FALSE(IsValidUtf8("\x80"));
}

}  // namespace
}  // namespace entitysync::examples
