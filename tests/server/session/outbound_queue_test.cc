#include "server/session/outbound_queue.h"

#include <string>

#include "gtest/gtest.h"

namespace entitysync {
namespace {

OutboundMessage Update(const std::string& key, uint64_t version,
                       size_t size = 10) {
  v1::SubscribeResponse response;
  response.mutable_update()->set_version(version);
  OutboundMessage msg =
      EncodeOutbound(response, OutboundMessage::Kind::kUpdate, key, version);
  msg.size = size;  // Sizes chosen by the test make the limits easy to read.
  return msg;
}

OutboundMessage Control(size_t size = 10) {
  OutboundMessage msg =
      EncodeOutbound(v1::SubscribeResponse(), OutboundMessage::Kind::kControl);
  msg.size = size;
  return msg;
}

OutboundMessage Stale(const std::string& key) {
  OutboundMessage msg = EncodeOutbound(v1::SubscribeResponse(),
                                       OutboundMessage::Kind::kStale, key);
  msg.size = 5;
  return msg;
}

TEST(OutboundQueueTest, NewerUpdateReplacesPendingOneInPlace) {
  OutboundQueue q(1000);
  EXPECT_EQ(q.Push(Update("a", 1)), OutboundQueue::PushResult::kQueued);
  EXPECT_EQ(q.Push(Update("b", 1)), OutboundQueue::PushResult::kQueued);
  EXPECT_EQ(q.Push(Update("a", 2, 30)), OutboundQueue::PushResult::kConflated);
  EXPECT_EQ(q.size(), 2u);
  EXPECT_EQ(q.bytes(), 40u);
  EXPECT_EQ(q.conflated(), 1u);
  auto first = q.Pop();
  ASSERT_TRUE(first.has_value());
  EXPECT_EQ(first->key_string, "a") << "keeps the key's position";
  EXPECT_EQ(first->version, 2u) << "with the newest content";
  EXPECT_EQ(q.Pop()->key_string, "b");
  EXPECT_TRUE(q.empty());
  EXPECT_EQ(q.bytes(), 0u);
}

TEST(OutboundQueueTest, ControlMessagesKeepOrderAndAreNeverConflated) {
  OutboundQueue q(1000);
  q.Push(Control());
  q.Push(Control());
  q.Push(Update("a", 1));
  q.Push(Control());
  EXPECT_EQ(q.size(), 4u);
  EXPECT_EQ(q.Pop()->kind, OutboundMessage::Kind::kControl);
  EXPECT_EQ(q.Pop()->kind, OutboundMessage::Kind::kControl);
  EXPECT_EQ(q.Pop()->kind, OutboundMessage::Kind::kUpdate);
  EXPECT_EQ(q.Pop()->kind, OutboundMessage::Kind::kControl);
}

TEST(OutboundQueueTest, UpdateSupersedesPendingStale) {
  OutboundQueue q(1000);
  q.Push(Stale("a"));
  q.Push(Stale("a"));
  EXPECT_EQ(q.size(), 1u) << "stale signals conflate too";
  q.Push(Update("a", 3));
  EXPECT_EQ(q.size(), 1u);
  EXPECT_EQ(q.Pop()->kind, OutboundMessage::Kind::kUpdate);
}

TEST(OutboundQueueTest, OverflowReportedWhenBytesPassLimit) {
  OutboundQueue q(100);
  for (int i = 0; i < 10; ++i) {
    EXPECT_NE(q.Push(Update("k" + std::to_string(i), 1)),
              OutboundQueue::PushResult::kOverflow);
  }
  EXPECT_EQ(q.bytes(), 100u);
  // Conflating an existing key does not grow the queue.
  EXPECT_NE(q.Push(Update("k3", 2)), OutboundQueue::PushResult::kOverflow);
  EXPECT_EQ(q.Push(Update("k10", 1)), OutboundQueue::PushResult::kOverflow);
}

TEST(OutboundQueueTest, DropKeysRemovesPendingUpdatesAndStale) {
  OutboundQueue q(1000);
  q.Push(Update("items/1", 1));
  q.Push(Control());
  q.Push(Stale("items/1"));
  q.Push(Update("items/2", 1));
  q.DropKeys([](absl::string_view k) { return k == "items/1"; });
  EXPECT_EQ(q.size(), 2u);
  EXPECT_EQ(q.bytes(), 20u);
  EXPECT_EQ(q.Pop()->kind, OutboundMessage::Kind::kControl);
  EXPECT_EQ(q.Pop()->key_string, "items/2");
  // The dropped key can be queued again.
  q.Push(Update("items/1", 2));
  EXPECT_EQ(q.size(), 1u);
}

TEST(OutboundQueueTest, PopBatchTakesWhatFitsInOrderAndALargeMessageAlone) {
  OutboundQueue q(1000);
  q.Push(Control(10));
  q.Push(Update("a", 1, 20));
  q.Push(Update("b", 1, 30));
  q.Push(Control(200));
  q.Push(Update("c", 1, 5));
  OutboundBatch first = q.PopBatch(60);
  ASSERT_EQ(first.size(), 3u) << "10 + 20 + 30 fit in 60; 200 does not";
  EXPECT_EQ(first[0].kind, OutboundMessage::Kind::kControl);
  EXPECT_EQ(first[1].key_string, "a");
  EXPECT_EQ(first[2].key_string, "b");
  OutboundBatch second = q.PopBatch(60);
  ASSERT_EQ(second.size(), 1u) << "over the limit: leaves alone";
  EXPECT_EQ(second[0].size, 200u);
  // Popped updates are no longer conflated with: a new one is queued anew.
  EXPECT_EQ(q.Push(Update("a", 2)), OutboundQueue::PushResult::kQueued);
  EXPECT_EQ(q.PopBatch(0).size(), 1u) << "0: one message per write";
  EXPECT_EQ(q.PopBatch(60).size(), 1u);
  EXPECT_TRUE(q.PopBatch(60).empty());
  EXPECT_EQ(q.bytes(), 0u);
}

TEST(OutboundQueueTest, PopBatchHoldsAtMostTheMessageCap) {
  OutboundQueue q(1 << 20);
  for (size_t i = 0; i < OutboundQueue::kMaxBatchMessages + 3; ++i) {
    q.Push(Control(1));
  }
  EXPECT_EQ(q.PopBatch(1 << 20).size(), OutboundQueue::kMaxBatchMessages);
  EXPECT_EQ(q.PopBatch(1 << 20).size(), 3u);
}

TEST(OutboundMessageTest, BatchParsesAsTheMessagesInOrderSharingTheirBytes) {
  OutboundBatch batch;
  for (int i = 0; i < 3; ++i) {
    v1::SubscribeResponse response;
    v1::Update* update = response.mutable_update();
    update->mutable_key()->set_entity("items");
    update->mutable_key()->set_id(std::string(i == 1 ? 300 : 1, 'k'));
    update->set_version(i + 1);
    update->add_rows()->set_data(std::string(i * 200, 'r'));
    batch.push_back(EncodeOutbound(response, OutboundMessage::Kind::kUpdate));
  }
  grpc::ByteBuffer bytes = EncodeBatch(batch);
  grpc::Slice flat;
  ASSERT_TRUE(bytes.DumpToSingleSlice(&flat).ok());
  v1::SubscribeResponse parsed;
  ASSERT_TRUE(parsed.ParseFromArray(flat.begin(), flat.size()));
  ASSERT_TRUE(parsed.has_batch());
  ASSERT_EQ(parsed.batch().responses_size(), 3);
  for (int i = 0; i < 3; ++i) {
    const v1::Update& u = parsed.batch().responses(i).update();
    EXPECT_EQ(u.version(), static_cast<uint64_t>(i + 1));
    EXPECT_EQ(u.key().id().size(), i == 1 ? 300u : 1u);
    EXPECT_EQ(u.rows(0).data().size(), static_cast<size_t>(i * 200));
  }
}

}  // namespace
}  // namespace entitysync
