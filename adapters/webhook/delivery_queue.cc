#include "adapters/webhook/delivery_queue.h"

#include <algorithm>
#include <utility>

#include "absl/strings/str_cat.h"

namespace entitysync {
namespace webhook {

DeliveryQueue::DeliveryQueue(DeliveryQueueOptions options)
    : options_(std::move(options)) {}

std::string DeliveryQueue::MapKey(const v1::EntityKey& key) {
  return absl::StrCat(key.entity().size(), ":", key.entity(), key.id());
}

bool DeliveryQueue::IsNewer(const KeyState& state, uint64_t version) {
  if (state.has_delivered && version <= state.delivered_version) return false;
  if (state.in_flight && version <= state.in_flight_version) return false;
  if (state.pending && version <= state.pending->version()) return false;
  return true;
}

DeliveryQueue::OfferResult DeliveryQueue::Offer(const v1::Update& update) {
  const std::string key = MapKey(update.key());
  absl::MutexLock lock(&mu_);
  auto [it, inserted] = keys_.try_emplace(key);
  KeyState& state = it->second;
  if (!IsNewer(state, update.version())) return OfferResult::kOutdated;
  if (state.pending) {
    *state.pending = update;
    return OfferResult::kConflated;
  }
  if (pending_keys_ >= options_.max_pending_keys) {
    if (inserted) keys_.erase(it);
    return OfferResult::kOverflow;
  }
  SetPendingLocked(state, update);
  if (!state.in_flight && !state.backing_off) ready_.push_back(key);
  return OfferResult::kQueued;
}

void DeliveryQueue::SetPendingLocked(KeyState& state,
                                     const v1::Update& update) {
  state.pending = update;
  ++pending_keys_;
}

void DeliveryQueue::PromoteDueLocked(absl::Time now) {
  while (!waiting_.empty() && waiting_.begin()->first <= now) {
    auto it = keys_.find(waiting_.begin()->second);
    if (it != keys_.end() && it->second.backing_off) {
      it->second.backing_off = false;
      ready_.push_back(it->first);
    }
    waiting_.erase(waiting_.begin());
  }
}

std::optional<Delivery> DeliveryQueue::TakeReady(absl::Time now) {
  absl::MutexLock lock(&mu_);
  PromoteDueLocked(now);
  while (in_flight_ < options_.max_in_flight && !ready_.empty()) {
    std::string key = std::move(ready_.front());
    ready_.pop_front();
    auto it = keys_.find(key);
    if (it == keys_.end()) continue;
    KeyState& state = it->second;
    if (!state.pending || state.in_flight || state.backing_off) continue;
    Delivery delivery;
    delivery.update = *std::move(state.pending);
    state.pending.reset();
    --pending_keys_;
    // Offer already refuses outdated versions; this keeps the guard at the
    // one place a request is made, whatever the order of events.
    if (!IsNewer(state, delivery.update.version())) {
      RememberIdleLocked(key, state);
      continue;
    }
    delivery.attempt = ++state.attempts;
    if (delivery.attempt == 1) state.first_attempt = now;
    state.in_flight = true;
    state.in_flight_version = delivery.update.version();
    ++in_flight_;
    return delivery;
  }
  return std::nullopt;
}

void DeliveryQueue::ReleaseLocked(const std::string& key, KeyState& state) {
  if (state.pending) {
    ready_.push_back(key);
  } else {
    RememberIdleLocked(key, state);
  }
}

void DeliveryQueue::RememberIdleLocked(const std::string& key,
                                       KeyState& state) {
  idle_.emplace_back(key, ++state.idle_seq);
  while (idle_.size() > options_.max_remembered_keys) {
    auto [oldest, seq] = std::move(idle_.front());
    idle_.pop_front();
    auto it = keys_.find(oldest);
    if (it == keys_.end()) continue;
    const KeyState& candidate = it->second;
    if (candidate.idle_seq != seq || candidate.pending || candidate.in_flight ||
        candidate.backing_off) {
      continue;  // busy again, or idle again with a later entry
    }
    keys_.erase(it);
  }
}

absl::Duration DeliveryQueue::BackoffLocked(int attempts) {
  absl::Duration ceiling = options_.retry.initial_backoff;
  for (int i = 1; i < attempts && ceiling < options_.retry.max_backoff; ++i) {
    ceiling *= 2;
  }
  ceiling = std::min(ceiling, options_.retry.max_backoff);
  // Equal jitter: spread retries of many keys without ever retrying at once.
  const double fraction = absl::Uniform(gen_, 0.5, 1.0);
  return ceiling * fraction;
}

DeliveryQueue::Completion DeliveryQueue::Complete(const Delivery& delivery,
                                                  ResponseClass outcome,
                                                  absl::Duration retry_after,
                                                  absl::Time now) {
  const std::string key = MapKey(delivery.update.key());
  absl::MutexLock lock(&mu_);
  auto it = keys_.find(key);
  if (it == keys_.end() || !it->second.in_flight) {
    // Not handed out by TakeReady: a caller bug.
    return Completion{Completion::Kind::kGaveUp};
  }
  KeyState& state = it->second;
  state.in_flight = false;
  --in_flight_;
  const uint64_t version = delivery.update.version();
  Completion completion{Completion::Kind::kDelivered};
  completion.attempts = state.attempts;
  switch (outcome) {
    case ResponseClass::kSuccess:
    case ResponseClass::kDiscard:
      if (!state.has_delivered || version > state.delivered_version) {
        state.has_delivered = true;
        state.delivered_version = version;
      }
      if (state.pending && state.pending->version() <= version) {
        state.pending.reset();
        --pending_keys_;
      }
      state.attempts = 0;
      ReleaseLocked(key, state);
      completion.kind = outcome == ResponseClass::kSuccess
                            ? Completion::Kind::kDelivered
                            : Completion::Kind::kDiscarded;
      return completion;
    case ResponseClass::kRetry:
      break;
  }
  if (state.attempts >= options_.retry.max_attempts ||
      now - state.first_attempt >= options_.retry.max_age) {
    state.attempts = 0;
    ReleaseLocked(key, state);
    completion.kind = Completion::Kind::kGaveUp;
    return completion;
  }
  // A newer pending update, if any, replaces the failed one.
  if (!state.pending) SetPendingLocked(state, delivery.update);
  absl::Duration delay = BackoffLocked(state.attempts);
  delay = std::max(delay, std::min(retry_after, options_.retry.max_backoff));
  state.backing_off = true;
  completion.kind = Completion::Kind::kRetry;
  completion.retry_at = now + delay;
  waiting_.emplace(completion.retry_at, key);
  return completion;
}

absl::Time DeliveryQueue::NextRetryAt() const {
  absl::MutexLock lock(&mu_);
  return waiting_.empty() ? absl::InfiniteFuture() : waiting_.begin()->first;
}

size_t DeliveryQueue::in_flight() const {
  absl::MutexLock lock(&mu_);
  return in_flight_;
}

size_t DeliveryQueue::pending_keys() const {
  absl::MutexLock lock(&mu_);
  return pending_keys_;
}

size_t DeliveryQueue::tracked_keys() const {
  absl::MutexLock lock(&mu_);
  return keys_.size();
}

}  // namespace webhook
}  // namespace entitysync
