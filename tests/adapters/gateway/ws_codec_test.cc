#include "adapters/gateway/ws_codec.h"

#include <string>

#include "gtest/gtest.h"

namespace entitysync {
namespace gateway {
namespace {

TEST(ChooseModeTest, FirstKnownSubprotocolWinsAndUnknownMeansLegacy) {
  std::string chosen;
  EXPECT_EQ(ChooseMode("", &chosen), WsMode::kLegacy);
  EXPECT_EQ(chosen, "");
  EXPECT_EQ(
      ChooseMode("chat, entitysync.v1.proto, entitysync.v1.json", &chosen),
      WsMode::kBinary);
  EXPECT_EQ(chosen, "entitysync.v1.proto");
  EXPECT_EQ(ChooseMode("entitysync.v1.json", &chosen), WsMode::kEnveloped);
  EXPECT_EQ(chosen, "entitysync.v1.json");
  EXPECT_EQ(ChooseMode("entity-sync", &chosen), WsMode::kLegacy);
  EXPECT_EQ(chosen, "entity-sync");
  EXPECT_EQ(ChooseMode("mqtt", &chosen), WsMode::kLegacy);
  EXPECT_EQ(chosen, "");
}

TEST(ParseClientTextTest, EntitySyncReadmeMessages) {
  absl::StatusOr<v1::SubscribeRequest> subscribe = ParseClientText(
      R"({"action": "subscribe", "body": {"id": "100", "entity": "items"}})",
      WsMode::kLegacy);
  ASSERT_TRUE(subscribe.ok()) << subscribe.status();
  EXPECT_EQ(subscribe->subscribe().key().entity(), "items");
  EXPECT_EQ(subscribe->subscribe().key().id(), "100");

  absl::StatusOr<v1::SubscribeRequest> secret = ParseClientText(
      R"({"action": "secret", "body": "my-super-secret-secret-123"})",
      WsMode::kLegacy);
  ASSERT_TRUE(secret.ok()) << secret.status();
  EXPECT_EQ(secret->authenticate().secret(), "my-super-secret-secret-123");

  absl::StatusOr<v1::SubscribeRequest> unsubscribe = ParseClientText(
      R"({"action":"unsubscribe","body":{"entity":"items","id":"*"}})",
      WsMode::kLegacy);
  ASSERT_TRUE(unsubscribe.ok());
  EXPECT_EQ(unsubscribe->unsubscribe().key().id(), "*");
}

TEST(ParseClientTextTest, OtherMessagesPassThroughAsTheyAre) {
  const std::string frame = R"({"action":"chat","body":{"text":"hi"}})";
  absl::StatusOr<v1::SubscribeRequest> request =
      ParseClientText(frame, WsMode::kLegacy);
  ASSERT_TRUE(request.ok());
  EXPECT_EQ(request->passthrough().data(), frame);
  absl::StatusOr<v1::SubscribeRequest> no_action =
      ParseClientText(R"({"hello":1})", WsMode::kEnveloped);
  ASSERT_TRUE(no_action.ok());
  EXPECT_TRUE(no_action->has_passthrough());
}

TEST(ParseClientTextTest, EnvelopedExtras) {
  absl::StatusOr<v1::SubscribeRequest> request = ParseClientText(
      R"({"action":"subscribe","request_id":7,"body":{"entity":"items",)"
      R"("id":"1","known_version":18446744073709551615,"skip_snapshot":true}})",
      WsMode::kEnveloped);
  ASSERT_TRUE(request.ok()) << request.status();
  EXPECT_EQ(request->request_id(), 7u);
  EXPECT_EQ(request->subscribe().known_version(), 18446744073709551615u);
  EXPECT_TRUE(request->subscribe().skip_snapshot());
  absl::StatusOr<v1::SubscribeRequest> as_string =
      ParseClientText(R"({"action":"subscribe","body":{"entity":"a","id":"1",)"
                      R"("known_version":"9007199254740993"}})",
                      WsMode::kEnveloped);
  ASSERT_TRUE(as_string.ok());
  EXPECT_EQ(as_string->subscribe().known_version(), 9007199254740993u);
  // The legacy mode has no request ids.
  absl::StatusOr<v1::SubscribeRequest> legacy = ParseClientText(
      R"({"action":"subscribe","request_id":7,"body":{"entity":"a","id":"1"}})",
      WsMode::kLegacy);
  ASSERT_TRUE(legacy.ok());
  EXPECT_EQ(legacy->request_id(), 0u);
}

TEST(ParseClientTextTest, MalformedFramesGetPreciseErrors) {
  struct Case {
    const char* frame;
    const char* message;
  };
  const Case cases[] = {
      {"not json", "not valid JSON"},
      {"[1,2]", "must be a JSON object"},
      {R"({"action":5})", "\"action\" must be a string"},
      {R"({"action":"subscribe"})", "\"body\" is missing"},
      {R"({"action":"subscribe","body":"items/1"})", "\"body\" must be an"},
      {R"({"action":"subscribe","body":{"id":"1"}})", "body.entity"},
      {R"({"action":"subscribe","body":{"entity":"a","id":1}})", "body.id"},
      {R"({"action":"secret","body":{}})", "secret must be a string"},
      {R"({"action":"subscribe","request_id":-1,"body":{"entity":"a","id":"1"}})",
       "request_id"},
      {R"({"action":"subscribe","body":{"entity":"a","id":"1","known_version":1.5}})",
       "known_version"},
      {R"({"action":"subscribe","body":{"entity":"a","id":"1","skip_snapshot":1}})",
       "skip_snapshot"},
  };
  for (const Case& c : cases) {
    absl::StatusOr<v1::SubscribeRequest> request =
        ParseClientText(c.frame, WsMode::kEnveloped);
    ASSERT_FALSE(request.ok()) << c.frame;
    EXPECT_EQ(request.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_NE(request.status().message().find(c.message), std::string::npos)
        << c.frame << " -> " << request.status();
  }
}

TEST(ParseClientTextTest, ErrorsKnowTheRequestIdOfTheFrame) {
  uint64_t request_id = 0;
  absl::StatusOr<v1::SubscribeRequest> request =
      ParseClientText(R"({"action":"subscribe","request_id":4})",
                      WsMode::kEnveloped, &request_id);
  EXPECT_FALSE(request.ok());
  EXPECT_EQ(request_id, 4u);
}

v1::SubscribeResponse UpdateWithRows(std::initializer_list<std::string> rows) {
  v1::SubscribeResponse response;
  v1::Update* update = response.mutable_update();
  update->mutable_key()->set_entity("items");
  update->mutable_key()->set_id("100");
  update->set_version(12);
  for (const std::string& data : rows) {
    v1::Row* row = update->add_rows();
    row->set_data(data);
    row->set_content_type("application/json");
  }
  return response;
}

TEST(EncodeResponseTest, LegacySendsEachRowAsItsOwnFrame) {
  std::vector<WsFrame> frames = EncodeResponse(
      UpdateWithRows({R"({"id":"100"})", R"({"tag":"a"})", "\xff\xfe"}),
      WsMode::kLegacy);
  ASSERT_EQ(frames.size(), 3u);
  EXPECT_EQ(frames[0].data, R"({"id":"100"})");
  EXPECT_FALSE(frames[0].binary);
  EXPECT_EQ(frames[1].data, R"({"tag":"a"})");
  // Text frames must be UTF-8; other bytes go as a binary frame.
  EXPECT_TRUE(frames[2].binary);

  v1::SubscribeResponse subscribed;
  subscribed.mutable_subscribed()->set_request_id(1);
  EXPECT_TRUE(EncodeResponse(subscribed, WsMode::kLegacy).empty());
}

TEST(EncodeResponseTest, EnvelopedUpdateEmbedsJsonRows) {
  std::vector<WsFrame> frames = EncodeResponse(
      UpdateWithRows({R"({"id":"100"})", "plain text", "\xff", "{broken"}),
      WsMode::kEnveloped);
  ASSERT_EQ(frames.size(), 1u);
  EXPECT_EQ(frames[0].data,
            R"({"type":"update","key":{"entity":"items","id":"100"},)"
            R"("version":12,"removed":false,"rows":[)"
            R"({"content_type":"application/json","json":{"id":"100"}},)"
            R"({"content_type":"application/json","text":"plain text"},)"
            R"({"content_type":"application/json","base64":"/w=="},)"
            R"({"content_type":"application/json","text":"{broken"}]})");
}

TEST(EncodeResponseTest, EnvelopedVersionsBeyondJavaScriptNumbersAreStrings) {
  v1::SubscribeResponse response = UpdateWithRows({});
  response.mutable_update()->set_version((uint64_t{1} << 53) - 1);
  EXPECT_NE(EncodeResponse(response, WsMode::kEnveloped)[0].data.find(
                R"("version":9007199254740991,)"),
            std::string::npos);
  response.mutable_update()->set_version(uint64_t{1} << 53);
  EXPECT_NE(EncodeResponse(response, WsMode::kEnveloped)[0].data.find(
                R"("version":"9007199254740992",)"),
            std::string::npos);
}

TEST(EncodeResponseTest, ErrorsAndAcks) {
  v1::SubscribeResponse error;
  error.mutable_error()->set_request_id(3);
  error.mutable_error()->set_code(7);
  error.mutable_error()->set_message("no \"access\"");
  error.mutable_error()->mutable_key()->set_entity("items");
  error.mutable_error()->mutable_key()->set_id("1");
  const std::string expected =
      R"({"type":"error","request_id":3,"code":7,"status":"PERMISSION_DENIED",)"
      R"("message":"no \"access\"","key":{"entity":"items","id":"1"}})";
  EXPECT_EQ(EncodeResponse(error, WsMode::kEnveloped)[0].data, expected);
  EXPECT_EQ(EncodeResponse(error, WsMode::kLegacy)[0].data, expected);

  v1::SubscribeResponse stale;
  stale.mutable_stale()->mutable_key()->set_entity("items");
  stale.mutable_stale()->mutable_key()->set_id("1");
  stale.mutable_stale()->set_reason("resolver unavailable");
  EXPECT_EQ(EncodeResponse(stale, WsMode::kEnveloped)[0].data,
            R"({"type":"stale","key":{"entity":"items","id":"1"},)"
            R"("reason":"resolver unavailable"})");

  v1::SubscribeResponse goaway;
  goaway.mutable_goaway()->set_reconnect_within_ms(100);
  EXPECT_TRUE(EncodeResponse(goaway, WsMode::kEnveloped).empty());
}

TEST(EncodeErrorJsonTest, InvalidUtf8InMessagesIsReplacedNotFatal) {
  const std::string json =
      EncodeErrorJson(0, absl::InvalidArgumentError("bad \xc3 byte"), nullptr);
  EXPECT_EQ(json.find('\xc3'), std::string::npos);
  EXPECT_NE(json.find("INVALID_ARGUMENT"), std::string::npos);
}

}  // namespace
}  // namespace gateway
}  // namespace entitysync
