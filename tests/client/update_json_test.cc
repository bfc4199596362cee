#include "client/update_json.h"

#include <string>

#include "gtest/gtest.h"

namespace entitysync {
namespace client {
namespace {

v1::Update MakeUpdate() {
  v1::Update update;
  update.mutable_key()->set_entity("items");
  update.mutable_key()->set_id("100");
  update.set_version(3);
  return update;
}

TEST(UpdateJsonTest, FormatsAnUpdateWithATextRow) {
  v1::Update update = MakeUpdate();
  v1::Row* row = update.add_rows();
  row->set_content_type("application/json");
  row->set_data(R"({"name":"a"})");
  EXPECT_EQ(UpdateToJsonLine(update),
            R"({"key":{"entity":"items","id":"100"},"version":3,)"
            R"("removed":false,"rows":[{"content_type":"application/json",)"
            R"("data":"{\"name\":\"a\"}"}]})");
}

TEST(UpdateJsonTest, FormatsARemovedUpdateWithNoRows) {
  v1::Update update = MakeUpdate();
  update.set_removed(true);
  EXPECT_EQ(UpdateToJsonLine(update),
            R"({"key":{"entity":"items","id":"100"},"version":3,)"
            R"("removed":true,"rows":[]})");
}

TEST(UpdateJsonTest, BinaryRowsAreBase64AndRowsKeepTheirOrder) {
  v1::Update update = MakeUpdate();
  update.add_rows()->set_data(std::string("\xff\x00\x01", 3));
  update.add_rows()->set_data("second");
  EXPECT_EQ(UpdateToJsonLine(update),
            R"({"key":{"entity":"items","id":"100"},"version":3,)"
            R"("removed":false,"rows":[{"content_type":"",)"
            R"("data_base64":"/wAB"},{"content_type":"","data":"second"}]})");
}

TEST(UpdateJsonTest, EscapesControlCharactersAndKeepsUtf8) {
  EXPECT_EQ(JsonQuote("a\"b\\c\n\t\r\x01\x7f"),
            R"("a\"b\\c\n\t\r\u0001\u007f")");
  EXPECT_EQ(JsonQuote("caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80"),
            "\"caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80\"");
  EXPECT_EQ(JsonQuote(std::string("nul\0", 4)), R"("nul\u0000")");
}

TEST(UpdateJsonTest, InvalidUtf8InKeysBecomesReplacementCharacters) {
  EXPECT_EQ(JsonQuote("a\xff"
                      "b"),
            R"("a\ufffdb")");
  v1::Update update = MakeUpdate();
  update.mutable_key()->set_id("x\xc3");
  EXPECT_NE(UpdateToJsonLine(update).find(R"("id":"x\ufffd")"),
            std::string::npos);
}

TEST(UpdateJsonTest, ValidatesUtf8Strictly) {
  EXPECT_TRUE(IsValidUtf8(""));
  EXPECT_TRUE(IsValidUtf8("plain"));
  EXPECT_TRUE(IsValidUtf8("\xf4\x8f\xbf\xbf"));   // U+10FFFF
  EXPECT_FALSE(IsValidUtf8("\xc0\xaf"));          // overlong '/'
  EXPECT_FALSE(IsValidUtf8("\xed\xa0\x80"));      // surrogate
  EXPECT_FALSE(IsValidUtf8("\xf4\x90\x80\x80"));  // above U+10FFFF
  EXPECT_FALSE(IsValidUtf8("\xe2\x82"));          // truncated
  EXPECT_FALSE(IsValidUtf8("\x80"));              // lone continuation
}

}  // namespace
}  // namespace client
}  // namespace entitysync
