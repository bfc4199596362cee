#include "bench/subscribe_response_reader.h"

#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "bench/row_stamp.h"
#include "entitysync/v1/entitysync.pb.h"
#include "grpcpp/support/byte_buffer.h"
#include "grpcpp/support/slice.h"
#include "gtest/gtest.h"

namespace entitysync {
namespace bench {
namespace {

using Kind = SubscribeResponseView::Kind;

// `bytes` split into slices at `cuts`, as gRPC may deliver a message.
grpc::ByteBuffer Buffer(const std::string& bytes,
                        const std::vector<size_t>& cuts = {}) {
  std::vector<grpc::Slice> slices;
  size_t from = 0;
  for (size_t cut : cuts) {
    slices.emplace_back(bytes.substr(from, cut - from));
    from = cut;
  }
  slices.emplace_back(bytes.substr(from));
  return grpc::ByteBuffer(slices.data(), slices.size());
}

v1::SubscribeResponse Update(const std::string& id, uint64_t version,
                             RowStamp stamp, size_t row_bytes) {
  v1::SubscribeResponse response;
  v1::Update* update = response.mutable_update();
  update->mutable_key()->set_entity("bench");
  update->mutable_key()->set_id(id);
  update->set_version(version);
  v1::Row* row = update->add_rows();
  row->set_data(EncodeRow(stamp, row_bytes));
  row->set_content_type("application/octet-stream");
  return response;
}

TEST(SubscribeResponseReaderTest, ReadsAnUpdateAndItsStamp) {
  const std::string bytes =
      Update("4711", 42, RowStamp{42, 1700000000123456789}, 100)
          .SerializeAsString();
  grpc::ByteBuffer buffer = Buffer(bytes);
  SubscribeResponseView view;
  ASSERT_TRUE(ReadSubscribeResponse(&buffer, &view));
  EXPECT_EQ(view.kind, Kind::kUpdate);
  EXPECT_EQ(view.id, "4711");
  EXPECT_EQ(view.version, 42u);
  EXPECT_FALSE(view.removed);
  ASSERT_TRUE(view.has_stamp);
  EXPECT_EQ(view.stamp.version, 42u);
  EXPECT_EQ(view.stamp.notify_time_ns, 1700000000123456789);
}

TEST(SubscribeResponseReaderTest, ReadsAcrossEverySliceBoundary) {
  const std::string bytes =
      Update("u12", 7, RowStamp{7, 99}, 20).SerializeAsString();
  for (size_t cut = 1; cut < bytes.size(); ++cut) {
    for (size_t second = cut + 1; second < bytes.size(); second += 5) {
      grpc::ByteBuffer buffer = Buffer(bytes, {cut, second});
      SubscribeResponseView view;
      ASSERT_TRUE(ReadSubscribeResponse(&buffer, &view))
          << "cuts " << cut << "," << second;
      EXPECT_EQ(view.id, "u12");
      EXPECT_EQ(view.version, 7u);
      EXPECT_EQ(view.stamp.version, 7u);
      EXPECT_EQ(view.stamp.notify_time_ns, 99);
    }
  }
}

TEST(SubscribeResponseReaderTest, OnlyTheFirstRowCarriesTheStamp) {
  v1::SubscribeResponse response = Update("1", 3, RowStamp{3, 30}, 16);
  response.mutable_update()->add_rows()->set_data(
      EncodeRow(RowStamp{9, 90}, 16));
  grpc::ByteBuffer buffer = Buffer(response.SerializeAsString());
  SubscribeResponseView view;
  ASSERT_TRUE(ReadSubscribeResponse(&buffer, &view));
  EXPECT_EQ(view.stamp.version, 3u);
}

TEST(SubscribeResponseReaderTest, ShortOrMissingRowsHaveNoStamp) {
  v1::SubscribeResponse removed;
  removed.mutable_update()->mutable_key()->set_id("5");
  removed.mutable_update()->set_version(8);
  removed.mutable_update()->set_removed(true);
  grpc::ByteBuffer buffer = Buffer(removed.SerializeAsString());
  SubscribeResponseView view;
  ASSERT_TRUE(ReadSubscribeResponse(&buffer, &view));
  EXPECT_TRUE(view.removed);
  EXPECT_FALSE(view.has_stamp);

  v1::SubscribeResponse short_row;
  short_row.mutable_update()->add_rows()->set_data("tiny");
  buffer = Buffer(short_row.SerializeAsString());
  ASSERT_TRUE(ReadSubscribeResponse(&buffer, &view));
  EXPECT_EQ(view.kind, Kind::kUpdate);
  EXPECT_FALSE(view.has_stamp);
  EXPECT_FALSE(view.removed);  // reset from the previous message
}

TEST(SubscribeResponseReaderTest, ReadsTheOtherKinds) {
  SubscribeResponseView view;

  v1::SubscribeResponse subscribed;
  subscribed.mutable_subscribed()->set_request_id(3);
  subscribed.mutable_subscribed()->mutable_key()->set_id("17");
  grpc::ByteBuffer buffer = Buffer(subscribed.SerializeAsString());
  ASSERT_TRUE(ReadSubscribeResponse(&buffer, &view));
  EXPECT_EQ(view.kind, Kind::kSubscribed);
  EXPECT_EQ(view.id, "17");

  v1::SubscribeResponse error;
  error.mutable_error()->set_code(8);
  error.mutable_error()->set_message("slow down");
  error.mutable_error()->mutable_key()->set_id("18");
  buffer = Buffer(error.SerializeAsString());
  ASSERT_TRUE(ReadSubscribeResponse(&buffer, &view));
  EXPECT_EQ(view.kind, Kind::kError);
  EXPECT_EQ(view.error_code, 8);
  EXPECT_EQ(view.error_message, "slow down");
  EXPECT_EQ(view.id, "18");

  v1::SubscribeResponse stale;
  stale.mutable_stale()->mutable_key()->set_id("19");
  stale.mutable_stale()->set_reason("resolver down");
  buffer = Buffer(stale.SerializeAsString());
  ASSERT_TRUE(ReadSubscribeResponse(&buffer, &view));
  EXPECT_EQ(view.kind, Kind::kStale);
  EXPECT_EQ(view.id, "19");

  v1::SubscribeResponse goaway;
  goaway.mutable_goaway()->set_reconnect_within_ms(2000);
  buffer = Buffer(goaway.SerializeAsString());
  ASSERT_TRUE(ReadSubscribeResponse(&buffer, &view));
  EXPECT_EQ(view.kind, Kind::kGoAway);
  EXPECT_TRUE(view.id.empty());

  v1::SubscribeResponse unsubscribed;
  unsubscribed.mutable_unsubscribed()->set_request_id(4);
  buffer = Buffer(unsubscribed.SerializeAsString());
  ASSERT_TRUE(ReadSubscribeResponse(&buffer, &view));
  EXPECT_EQ(view.kind, Kind::kOther);
}

TEST(SubscribeResponseReaderTest, RejectsTruncatedAndGarbledBytes) {
  const std::string bytes =
      Update("4711", 42, RowStamp{42, 1}, 100).SerializeAsString();
  for (size_t length = 1; length < bytes.size(); ++length) {
    grpc::ByteBuffer buffer = Buffer(bytes.substr(0, length));
    SubscribeResponseView view;
    EXPECT_FALSE(ReadSubscribeResponse(&buffer, &view)) << length;
  }
  grpc::ByteBuffer garbage = Buffer(std::string("\x12\xff\xff\xff\xff\x0f", 6));
  SubscribeResponseView view;
  EXPECT_FALSE(ReadSubscribeResponse(&garbage, &view));
}

TEST(SubscribeResponseReaderTest, ReadsEachMessageOfABatchInOrder) {
  v1::SubscribeResponse batch;
  v1::SubscribeResponse* subscribed = batch.mutable_batch()->add_responses();
  subscribed->mutable_subscribed()->mutable_key()->set_id("7");
  *batch.mutable_batch()->add_responses() =
      Update("7", 3, RowStamp{3, 99}, 100);
  *batch.mutable_batch()->add_responses() = Update("8", 4, RowStamp{4, 5}, 100);
  const std::string bytes = batch.SerializeAsString();
  grpc::ByteBuffer buffer = Buffer(bytes, {3, bytes.size() / 2});
  SubscribeResponseView view;
  std::vector<std::string> seen;
  ASSERT_TRUE(ReadSubscribeResponses(
      &buffer, &view, [&](const SubscribeResponseView& one) {
        seen.push_back(absl::StrCat(static_cast<int>(one.kind), ":", one.id,
                                    ":", one.version, ":", one.has_stamp));
      }));
  EXPECT_EQ(seen,
            (std::vector<std::string>{
                absl::StrCat(static_cast<int>(Kind::kSubscribed), ":7:0:0"),
                absl::StrCat(static_cast<int>(Kind::kUpdate), ":7:3:1"),
                absl::StrCat(static_cast<int>(Kind::kUpdate), ":8:4:1")}));

  // A lone message is handed on once, as it is.
  buffer = Buffer(Update("9", 1, RowStamp{1, 1}, 100).SerializeAsString());
  seen.clear();
  ASSERT_TRUE(ReadSubscribeResponses(
      &buffer, &view,
      [&](const SubscribeResponseView& one) { seen.push_back(one.id); }));
  EXPECT_EQ(seen, std::vector<std::string>{"9"});

  // Cut short: false.
  buffer = Buffer(bytes.substr(0, bytes.size() - 1));
  EXPECT_FALSE(ReadSubscribeResponses(&buffer, &view,
                                      [](const SubscribeResponseView&) {}));
}

}  // namespace
}  // namespace bench
}  // namespace entitysync
