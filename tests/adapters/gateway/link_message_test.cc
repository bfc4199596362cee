#include "adapters/gateway/link_message.h"

#include <memory>
#include <thread>
#include <utility>
#include <vector>

#include "gtest/gtest.h"

namespace entitysync {
namespace gateway {
namespace {

v1::SubscribeResponse ThreeRowUpdate() {
  v1::SubscribeResponse response;
  v1::Update* update = response.mutable_update();
  update->mutable_key()->set_entity("items");
  update->mutable_key()->set_id("7");
  update->set_version(3);
  for (const char* data : {"{\"a\":1}", "{\"a\":2}", "{\"a\":3}"}) {
    v1::Row* row = update->add_rows();
    row->set_content_type("application/json");
    row->set_data(data);
  }
  return response;
}

// What a replica's fan-out does: every connection of the update gets a
// LinkMessage over the same forms.
std::shared_ptr<SharedForms> SharedUpdate() {
  auto forms = std::make_shared<SharedForms>();
  auto parsed = std::make_unique<ParsedResponse>();
  parsed->response = ThreeRowUpdate();
  forms->Put(LinkMessage::kParsed, std::move(parsed));
  return forms;
}

TEST(LinkMessageTest, ConnectionsOfOneMessageShareItsFramesPerProtocol) {
  std::shared_ptr<SharedForms> forms = SharedUpdate();
  LinkMessage first(forms);
  LinkMessage second(forms);
  EXPECT_EQ(&first.response(), &second.response());

  std::vector<std::shared_ptr<const WsFrame>> a, b, legacy;
  first.AppendFrames(WsMode::kEnveloped, &a);
  second.AppendFrames(WsMode::kEnveloped, &b);
  second.AppendFrames(WsMode::kLegacy, &legacy);
  ASSERT_EQ(a.size(), 1u);
  ASSERT_EQ(b.size(), 1u);
  // Encoded once: the second connection writes the first one's frame.
  EXPECT_EQ(a[0].get(), b[0].get());
  EXPECT_EQ(a[0]->data,
            EncodeResponse(ThreeRowUpdate(), WsMode::kEnveloped).front().data);
  // Each protocol has its own frames: legacy sends the rows one by one.
  ASSERT_EQ(legacy.size(), 3u);
  EXPECT_EQ(legacy[2]->data, "{\"a\":3}");
  EXPECT_FALSE(legacy[2]->binary);

  std::shared_ptr<const std::string> web =
      first.GrpcWebFrame(GrpcWebFormat::kText);
  EXPECT_EQ(web.get(), second.GrpcWebFrame(GrpcWebFormat::kText).get());
  EXPECT_EQ(*web, EncodeGrpcWebMessage(ThreeRowUpdate().SerializeAsString(),
                                       GrpcWebFormat::kText));
}

TEST(LinkMessageTest, QueuedFramesOutliveTheMessages) {
  std::vector<std::shared_ptr<const WsFrame>> queued;
  {
    LinkMessage message(SharedUpdate());
    message.AppendFrames(WsMode::kBinary, &queued);
  }
  ASSERT_EQ(queued.size(), 1u);
  v1::SubscribeResponse parsed;
  ASSERT_TRUE(parsed.ParseFromString(queued[0]->data));
  EXPECT_TRUE(queued[0]->binary);
  EXPECT_EQ(parsed.update().rows_size(), 3);
}

TEST(LinkMessageTest, AMessageOfOneConnectionHasFormsOfItsOwn) {
  LinkMessage message(ThreeRowUpdate());
  EXPECT_EQ(message.response().update().version(), 3u);
  std::vector<std::shared_ptr<const WsFrame>> frames;
  message.AppendFrames(WsMode::kLegacy, &frames);
  EXPECT_EQ(frames.size(), 3u);
}

TEST(SharedFormsTest, ThreadsRacingForAFormAllGetTheInstalledOne) {
  struct Number final : SharedForms::Form {
    explicit Number(int v) : value(v) {}
    int value;
  };
  for (int round = 0; round < 50; ++round) {
    SharedForms forms;
    std::vector<const Number*> seen(4);
    std::vector<std::thread> threads;
    for (int t = 0; t < 4; ++t) {
      threads.emplace_back([&, t] {
        seen[t] =
            &forms.Get<Number>(1, [t] { return std::make_unique<Number>(t); });
      });
    }
    for (std::thread& thread : threads) thread.join();
    for (const Number* number : seen) EXPECT_EQ(number, seen[0]);
    EXPECT_FALSE(forms.Put(1, std::make_unique<Number>(9)));
    EXPECT_EQ(
        forms.Get<Number>(1, [] { return std::make_unique<Number>(9); }).value,
        seen[0]->value);
  }
}

}  // namespace
}  // namespace gateway
}  // namespace entitysync
