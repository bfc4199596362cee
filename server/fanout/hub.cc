#include "server/fanout/hub.h"

#include <algorithm>
#include <tuple>
#include <utility>

#include "absl/container/flat_hash_set.h"
#include "absl/hash/hash.h"
#include "server/core/entity_key.h"

namespace entitysync {

Hub::Hub(InterestListener* listener, int shard_count) : listener_(listener) {
  shards_.reserve(shard_count);
  for (int i = 0; i < shard_count; ++i)
    shards_.push_back(std::make_unique<Shard>());
}

bool Hub::Entry::Put(SubscriberRef ref) {
  if (many_ == nullptr) {
    if (one_.subscriber == nullptr || one_.subscriber == ref.subscriber) {
      const bool inserted = one_.subscriber == nullptr;
      one_ = std::move(ref);
      return inserted;
    }
    many_ = std::make_unique<
        absl::flat_hash_map<const Subscriber*, SubscriberRef>>();
    const Subscriber* first = one_.subscriber.get();
    many_->emplace(first, std::move(one_));
    one_ = SubscriberRef{};
  }
  auto [it, inserted] = many_->try_emplace(ref.subscriber.get());
  it->second = std::move(ref);
  return inserted;
}

bool Hub::Entry::Erase(const Subscriber* subscriber) {
  if (many_ != nullptr) return many_->erase(subscriber) > 0;
  if (one_.subscriber == nullptr || one_.subscriber.get() != subscriber) {
    return false;
  }
  one_ = SubscriberRef{};
  return true;
}

size_t Hub::Entry::size() const {
  if (many_ != nullptr) return many_->size();
  return one_.subscriber != nullptr ? 1 : 0;
}

void Hub::Entry::AppendTo(std::vector<SubscriberRef>* out) const {
  if (many_ == nullptr) {
    if (one_.subscriber != nullptr) out->push_back(one_);
    return;
  }
  out->reserve(out->size() + many_->size());
  for (const auto& [id, ref] : *many_) out->push_back(ref);
}

Hub::Shard& Hub::ShardFor(const std::string& key_string) const {
  return *shards_[absl::Hash<std::string>{}(key_string) % shards_.size()];
}

bool Hub::Add(const v1::EntityKey& key, std::shared_ptr<Subscriber> subscriber,
              std::shared_ptr<const std::string> credentials) {
  if (credentials == nullptr)
    credentials = std::make_shared<const std::string>();
  const std::string key_string = KeyString(key);
  Shard& shard = ShardFor(key_string);
  absl::MutexLock lock(&shard.mu);
  auto [it, new_key] = shard.entries.try_emplace(key_string);
  const bool inserted = it->second.Put(
      SubscriberRef{std::move(subscriber), std::move(credentials)});
  if (inserted) ++shard.subscriptions;
  if (new_key && listener_ != nullptr) {
    listener_->AddInterest(key.entity(), key.id());
  }
  return inserted;
}

bool Hub::Remove(const v1::EntityKey& key, const Subscriber* subscriber) {
  const std::string key_string = KeyString(key);
  Shard& shard = ShardFor(key_string);
  absl::MutexLock lock(&shard.mu);
  auto it = shard.entries.find(key_string);
  if (it == shard.entries.end()) return false;
  if (!it->second.Erase(subscriber)) return false;
  --shard.subscriptions;
  if (it->second.empty()) {
    shard.entries.erase(it);
    if (listener_ != nullptr) listener_->RemoveInterest(key.entity(), key.id());
  }
  return true;
}

void Hub::CollectLocked(const Shard& shard, const std::string& key_string,
                        std::vector<SubscriberRef>* out) const {
  auto it = shard.entries.find(key_string);
  if (it == shard.entries.end()) return;
  it->second.AppendTo(out);
}

std::vector<SubscriberRef> Hub::LookupExact(const v1::EntityKey& key) const {
  std::vector<SubscriberRef> out;
  const std::string key_string = KeyString(key);
  const Shard& shard = ShardFor(key_string);
  absl::MutexLock lock(&shard.mu);
  CollectLocked(shard, key_string, &out);
  return out;
}

std::vector<SubscriberRef> Hub::Lookup(const v1::EntityKey& key) const {
  std::vector<SubscriberRef> out;
  const std::string key_string = KeyString(key);
  {
    const Shard& shard = ShardFor(key_string);
    absl::MutexLock lock(&shard.mu);
    CollectLocked(shard, key_string, &out);
  }
  if (IsWildcard(key)) return out;
  const std::string wildcard = KeyString(WildcardKey(key.entity()));
  const size_t exact = out.size();
  {
    const Shard& shard = ShardFor(wildcard);
    absl::MutexLock lock(&shard.mu);
    CollectLocked(shard, wildcard, &out);
  }
  if (exact > 0 && out.size() > exact) {
    absl::flat_hash_set<const Subscriber*> seen;
    for (size_t i = 0; i < exact; ++i) seen.insert(out[i].subscriber.get());
    size_t w = exact;
    for (size_t i = exact; i < out.size(); ++i) {
      if (!seen.contains(out[i].subscriber.get())) out[w++] = std::move(out[i]);
    }
    out.resize(w);
  }
  return out;
}

bool Hub::HasSubscribers(const v1::EntityKey& key) const {
  if (HasExactSubscribers(key)) return true;
  return !IsWildcard(key) && HasExactSubscribers(WildcardKey(key.entity()));
}

bool Hub::HasExactSubscribers(const v1::EntityKey& key) const {
  const std::string key_string = KeyString(key);
  const Shard& shard = ShardFor(key_string);
  absl::MutexLock lock(&shard.mu);
  return shard.entries.contains(key_string);
}

std::vector<v1::EntityKey> Hub::Keys() const {
  std::vector<v1::EntityKey> keys;
  for (const auto& shard : shards_) {
    absl::MutexLock lock(&shard->mu);
    for (const auto& [key_string, entry] : shard->entries)
      keys.push_back(KeyOfKeyString(key_string));
  }
  return keys;
}

Hub::Counts Hub::CountSubscriptions(size_t top) const {
  Counts counts;
  for (const auto& shard : shards_) {
    absl::MutexLock lock(&shard->mu);
    for (const auto& [key_string, entry] : shard->entries) {
      counts.subscriptions_by_entity[EntityOfKeyString(key_string)] +=
          entry.size();
      counts.top_keys.emplace_back(KeyOfKeyString(key_string), entry.size());
    }
  }
  auto more = [](const auto& a, const auto& b) {
    if (a.second != b.second) return a.second > b.second;
    return std::tie(a.first.entity(), a.first.id()) <
           std::tie(b.first.entity(), b.first.id());
  };
  if (counts.top_keys.size() > top) {
    std::partial_sort(counts.top_keys.begin(), counts.top_keys.begin() + top,
                      counts.top_keys.end(), more);
    counts.top_keys.resize(top);
  } else {
    std::sort(counts.top_keys.begin(), counts.top_keys.end(), more);
  }
  return counts;
}

size_t Hub::key_count() const {
  size_t n = 0;
  for (const auto& shard : shards_) {
    absl::MutexLock lock(&shard->mu);
    n += shard->entries.size();
  }
  return n;
}

size_t Hub::subscription_count() const {
  size_t n = 0;
  for (const auto& shard : shards_) {
    absl::MutexLock lock(&shard->mu);
    n += shard->subscriptions;
  }
  return n;
}

}  // namespace entitysync
