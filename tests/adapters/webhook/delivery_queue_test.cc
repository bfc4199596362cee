#include "adapters/webhook/delivery_queue.h"

#include <string>

#include "gtest/gtest.h"

namespace entitysync::webhook {
namespace {

using Kind = DeliveryQueue::Completion::Kind;
using Offer = DeliveryQueue::OfferResult;

const absl::Time kStart = absl::FromUnixSeconds(1000);

v1::Update Update(const std::string& id, uint64_t version) {
  v1::Update update;
  update.mutable_key()->set_entity("items");
  update.mutable_key()->set_id(id);
  update.set_version(version);
  update.add_rows()->set_data(std::to_string(version));
  return update;
}

DeliveryQueueOptions Options() {
  DeliveryQueueOptions options;
  options.max_pending_keys = 3;
  options.max_in_flight = 2;
  options.retry.initial_backoff = absl::Milliseconds(100);
  options.retry.max_backoff = absl::Milliseconds(400);
  options.retry.max_attempts = 4;
  return options;
}

TEST(DeliveryQueueTest, NeverHandsOutAVersionNotAboveTheDeliveredOne) {
  DeliveryQueue queue(Options());
  EXPECT_EQ(queue.Offer(Update("1", 5)), Offer::kQueued);
  std::optional<Delivery> first = queue.TakeReady(kStart);
  ASSERT_TRUE(first);
  EXPECT_EQ(first->update.version(), 5u);
  EXPECT_EQ(queue.Offer(Update("1", 5)), Offer::kOutdated) << "in flight";
  EXPECT_EQ(queue.Offer(Update("1", 4)), Offer::kOutdated);
  EXPECT_EQ(queue
                .Complete(*first, ResponseClass::kSuccess, absl::ZeroDuration(),
                          kStart)
                .kind,
            Kind::kDelivered);
  EXPECT_EQ(queue.Offer(Update("1", 5)), Offer::kOutdated) << "delivered";
  EXPECT_EQ(queue.Offer(Update("1", 3)), Offer::kOutdated);
  EXPECT_FALSE(queue.TakeReady(kStart));
  EXPECT_EQ(queue.Offer(Update("1", 6)), Offer::kQueued);
  std::optional<Delivery> next = queue.TakeReady(kStart);
  ASSERT_TRUE(next);
  EXPECT_EQ(next->update.version(), 6u);
}

TEST(DeliveryQueueTest, OneInFlightPerKeyAndNewestPendingWins) {
  DeliveryQueue queue(Options());
  queue.Offer(Update("1", 1));
  std::optional<Delivery> first = queue.TakeReady(kStart);
  ASSERT_TRUE(first);
  EXPECT_EQ(queue.Offer(Update("1", 2)), Offer::kQueued);
  EXPECT_EQ(queue.Offer(Update("1", 3)), Offer::kConflated);
  EXPECT_EQ(queue.Offer(Update("1", 2)), Offer::kOutdated);
  EXPECT_FALSE(queue.TakeReady(kStart)) << "the key is in flight";
  queue.Complete(*first, ResponseClass::kSuccess, absl::ZeroDuration(), kStart);
  std::optional<Delivery> second = queue.TakeReady(kStart);
  ASSERT_TRUE(second);
  EXPECT_EQ(second->update.version(), 3u);
  EXPECT_EQ(second->update.rows(0).data(), "3");
}

TEST(DeliveryQueueTest, LimitsInFlightAndPendingKeys) {
  DeliveryQueue queue(Options());
  EXPECT_EQ(queue.Offer(Update("a", 1)), Offer::kQueued);
  EXPECT_EQ(queue.Offer(Update("b", 1)), Offer::kQueued);
  EXPECT_EQ(queue.Offer(Update("c", 1)), Offer::kQueued);
  EXPECT_EQ(queue.Offer(Update("d", 1)), Offer::kOverflow);
  EXPECT_EQ(queue.Offer(Update("c", 2)), Offer::kConflated)
      << "a pending key still takes newer versions";
  ASSERT_TRUE(queue.TakeReady(kStart));
  ASSERT_TRUE(queue.TakeReady(kStart));
  EXPECT_FALSE(queue.TakeReady(kStart)) << "max_in_flight 2";
  EXPECT_EQ(queue.in_flight(), 2u);
  EXPECT_EQ(queue.pending_keys(), 1u);
  EXPECT_EQ(queue.Offer(Update("d", 1)), Offer::kQueued);
}

TEST(DeliveryQueueTest, RetriesWithGrowingJitteredBackoffWithTheNewestUpdate) {
  DeliveryQueue queue(Options());
  queue.Offer(Update("1", 1));
  absl::Time now = kStart;
  std::optional<Delivery> delivery = queue.TakeReady(now);
  ASSERT_TRUE(delivery);
  EXPECT_EQ(delivery->attempt, 1);
  DeliveryQueue::Completion done = queue.Complete(
      *delivery, ResponseClass::kRetry, absl::ZeroDuration(), now);
  ASSERT_EQ(done.kind, Kind::kRetry);
  EXPECT_GE(done.retry_at - now, absl::Milliseconds(50));
  EXPECT_LE(done.retry_at - now, absl::Milliseconds(100));
  EXPECT_FALSE(queue.TakeReady(now)) << "backing off";
  EXPECT_EQ(queue.NextRetryAt(), done.retry_at);
  EXPECT_EQ(queue.Offer(Update("1", 2)), Offer::kConflated);

  now = done.retry_at;
  delivery = queue.TakeReady(now);
  ASSERT_TRUE(delivery);
  EXPECT_EQ(delivery->update.version(), 2u) << "the newer version replaces it";
  EXPECT_EQ(delivery->attempt, 2);
  done = queue.Complete(*delivery, ResponseClass::kRetry, absl::ZeroDuration(),
                        now);
  EXPECT_GE(done.retry_at - now, absl::Milliseconds(100));
  EXPECT_LE(done.retry_at - now, absl::Milliseconds(200));

  // Retry-After raises the delay, capped at max_backoff.
  now = done.retry_at;
  delivery = queue.TakeReady(now);
  ASSERT_TRUE(delivery);
  done =
      queue.Complete(*delivery, ResponseClass::kRetry, absl::Seconds(60), now);
  EXPECT_EQ(done.retry_at - now, absl::Milliseconds(400));

  now = done.retry_at;
  delivery = queue.TakeReady(now);
  ASSERT_TRUE(delivery);
  EXPECT_EQ(delivery->attempt, 4);
  done = queue.Complete(*delivery, ResponseClass::kRetry, absl::ZeroDuration(),
                        now);
  EXPECT_EQ(done.kind, Kind::kGaveUp);
  EXPECT_EQ(done.attempts, 4);
  EXPECT_FALSE(queue.TakeReady(now + absl::Hours(1)));
  EXPECT_EQ(queue.Offer(Update("1", 3)), Offer::kQueued)
      << "a newer version starts a new delivery";
  delivery = queue.TakeReady(now);
  ASSERT_TRUE(delivery);
  EXPECT_EQ(delivery->attempt, 1);
}

TEST(DeliveryQueueTest, GivesUpAfterMaxAge) {
  DeliveryQueueOptions options = Options();
  options.retry.max_attempts = 1000;
  options.retry.max_age = absl::Seconds(1);
  DeliveryQueue queue(options);
  queue.Offer(Update("1", 1));
  std::optional<Delivery> delivery = queue.TakeReady(kStart);
  ASSERT_TRUE(delivery);
  EXPECT_EQ(queue
                .Complete(*delivery, ResponseClass::kRetry,
                          absl::ZeroDuration(), kStart)
                .kind,
            Kind::kRetry);
  delivery = queue.TakeReady(kStart + absl::Seconds(1));
  ASSERT_TRUE(delivery);
  EXPECT_EQ(queue
                .Complete(*delivery, ResponseClass::kRetry,
                          absl::ZeroDuration(), kStart + absl::Seconds(1))
                .kind,
            Kind::kGaveUp);
}

TEST(DeliveryQueueTest, DiscardIsFinalForThatVersionOnly) {
  DeliveryQueue queue(Options());
  queue.Offer(Update("1", 1));
  std::optional<Delivery> delivery = queue.TakeReady(kStart);
  ASSERT_TRUE(delivery);
  EXPECT_EQ(queue
                .Complete(*delivery, ResponseClass::kDiscard,
                          absl::ZeroDuration(), kStart)
                .kind,
            Kind::kDiscarded);
  EXPECT_FALSE(queue.TakeReady(kStart + absl::Hours(1))) << "not retried";
  EXPECT_EQ(queue.NextRetryAt(), absl::InfiniteFuture());
  EXPECT_EQ(queue.Offer(Update("1", 1)), Offer::kOutdated);
  EXPECT_EQ(queue.Offer(Update("1", 2)), Offer::kQueued);
}

}  // namespace
}  // namespace entitysync::webhook

namespace entitysync::webhook {
namespace {

TEST(DeliveryQueueTest, TrackedKeysStayBoundedUnderManyDistinctKeys) {
  DeliveryQueueOptions options = Options();
  options.max_remembered_keys = 10;
  DeliveryQueue queue(options);
  for (int i = 0; i < 5000; ++i) {
    const std::string id = std::to_string(i);
    ASSERT_EQ(queue.Offer(Update(id, 7)), Offer::kQueued) << id;
    std::optional<Delivery> delivery = queue.TakeReady(kStart);
    ASSERT_TRUE(delivery);
    const Kind kind =
        queue
            .Complete(*delivery,
                      i % 2 ? ResponseClass::kSuccess : ResponseClass::kDiscard,
                      absl::ZeroDuration(), kStart)
            .kind;
    ASSERT_NE(kind, Kind::kRetry);
    // A key delivered again and again takes one remembered slot only.
    if (i % 3 == 0) {
      ASSERT_EQ(queue.Offer(Update("hot", i + 1)), Offer::kQueued);
      std::optional<Delivery> hot = queue.TakeReady(kStart);
      ASSERT_TRUE(hot);
      queue.Complete(*hot, ResponseClass::kSuccess, absl::ZeroDuration(),
                     kStart);
    }
    ASSERT_LE(queue.tracked_keys(), 10u) << "after key " << i;
  }
  // The most recently delivered keys are still guarded.
  EXPECT_EQ(queue.Offer(Update("4999", 7)), Offer::kOutdated);
  EXPECT_EQ(queue.Offer(Update("4999", 6)), Offer::kOutdated);
  // The oldest ones were forgotten: the server's ordering guards them now.
  EXPECT_EQ(queue.Offer(Update("1", 7)), Offer::kQueued);
}

TEST(DeliveryQueueTest, BusyKeysAreNeverForgotten) {
  DeliveryQueueOptions options = Options();
  options.max_remembered_keys = 0;
  DeliveryQueue queue(options);
  queue.Offer(Update("1", 5));
  std::optional<Delivery> first = queue.TakeReady(kStart);
  ASSERT_TRUE(first);
  EXPECT_EQ(queue.Offer(Update("1", 5)), Offer::kOutdated) << "in flight";
  EXPECT_EQ(
      queue
          .Complete(*first, ResponseClass::kRetry, absl::ZeroDuration(), kStart)
          .kind,
      Kind::kRetry);
  EXPECT_EQ(queue.Offer(Update("1", 4)), Offer::kOutdated) << "backing off";
  EXPECT_EQ(queue.tracked_keys(), 1u);
  std::optional<Delivery> retry = queue.TakeReady(kStart + absl::Seconds(1));
  ASSERT_TRUE(retry);
  queue.Complete(*retry, ResponseClass::kSuccess, absl::ZeroDuration(),
                 kStart + absl::Seconds(1));
  EXPECT_EQ(queue.tracked_keys(), 0u);
}

}  // namespace
}  // namespace entitysync::webhook
