#include "server/resolve/reauthorizer.h"

#include <memory>
#include <utility>

#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/status/status.h"
#include "entitysync/v1/entitysync.pb.h"
#include "server/core/entity_key.h"
#include "server/session/outbound_message.h"

namespace entitysync {

Reauthorizer::Reauthorizer(const EntityTable* table, const Hub* hub,
                           Executor* executor, absl::Duration interval,
                           size_t max_calls_in_flight, RecordCall record)
    : table_(table),
      hub_(hub),
      executor_(executor),
      interval_(interval),
      max_calls_in_flight_(std::max<size_t>(1, max_calls_in_flight)),
      record_(std::move(record)) {}

Reauthorizer::~Reauthorizer() { Shutdown(absl::ZeroDuration()); }

void Reauthorizer::Start() {
  if (interval_ > absl::ZeroDuration()) ScheduleNext();
}

void Reauthorizer::ScheduleNext() {
  executor_->PostAfter(interval_, [this] {
    {
      absl::MutexLock lock(&mu_);
      if (stopping_) return;
    }
    SweepNow();
    ScheduleNext();
  });
}

bool Reauthorizer::SweepNow() {
  {
    absl::MutexLock lock(&mu_);
    if (stopping_ || collecting_ || !todo_.empty() || in_flight_ > 0) {
      return false;
    }
    collecting_ = true;
  }
  // entity -> credentials -> distinct key strings. Gathered without any lock
  // of ours; the hub walks its shards one at a time. A credential string is
  // copied once per entity, not once per subscription (streams' tokens are
  // often hundreds of bytes).
  absl::flat_hash_map<
      std::string,
      absl::flat_hash_map<std::string, absl::flat_hash_set<std::string>>>
      groups;
  for (const v1::EntityKey& key : hub_->Keys()) {
    if (table_->Find(key.entity()) == nullptr) continue;
    const std::string key_string = KeyString(key);
    auto& by_credentials = groups[key.entity()];
    for (const SubscriberRef& ref : hub_->LookupExact(key)) {
      auto it = by_credentials.find(*ref.credentials);
      if (it == by_credentials.end()) {
        it = by_credentials.try_emplace(*ref.credentials).first;
      }
      it->second.insert(key_string);
    }
  }
  std::vector<Batch> now;
  {
    absl::MutexLock lock(&mu_);
    collecting_ = false;
    if (stopping_) return false;
    ++stats_.sweeps;
    for (auto& [entity, by_credentials] : groups) {
      const EntityRoute* route = table_->Find(entity);
      const size_t max_batch = route->config.max_batch_keys() > 0
                                   ? route->config.max_batch_keys()
                                   : 100;
      for (auto& [credentials, key_set] : by_credentials) {
        std::vector<std::string> keys(key_set.begin(), key_set.end());
        for (size_t i = 0; i < keys.size(); i += max_batch) {
          Batch batch;
          batch.entity = entity;
          batch.credentials = credentials;
          batch.key_strings.assign(
              keys.begin() + i,
              keys.begin() + std::min(keys.size(), i + max_batch));
          todo_.push_back(std::move(batch));
        }
      }
    }
    now = TakeLocked();
  }
  Issue(std::move(now));
  return true;
}

std::vector<Reauthorizer::Batch> Reauthorizer::TakeLocked() {
  std::vector<Batch> out;
  while (!stopping_ && in_flight_ < max_calls_in_flight_ && !todo_.empty()) {
    out.push_back(std::move(todo_.front()));
    todo_.pop_front();
    ++in_flight_;
    ++stats_.calls;
  }
  return out;
}

void Reauthorizer::Issue(std::vector<Batch> batches) {
  for (Batch& batch : batches) {
    const EntityRoute* route = table_->Find(batch.entity);
    v1::ResolveRequest request;
    request.set_reason(v1::ResolveRequest::REAUTHORIZE);
    request.set_credentials(batch.credentials);
    for (const std::string& ks : batch.key_strings) {
      *request.add_keys() = KeyOfKeyString(ks);
    }
    route->client->Resolve(
        request, absl::Milliseconds(route->config.resolver().timeout_ms()),
        [this, batch = std::move(batch),
         started = absl::Now()](absl::StatusOr<v1::ResolveResponse> response) {
          if (record_) record_(batch.entity, started, response.ok());
          OnAnswered(batch, std::move(response));
        });
  }
}

void Reauthorizer::OnAnswered(const Batch& batch,
                              absl::StatusOr<v1::ResolveResponse> response) {
  std::vector<std::string> denied;
  bool failed = false;
  if (!response.ok()) {
    // The resolver no longer accepts these credentials at all (an expired
    // or revoked token): every key of the call is revoked.
    if (response.status().code() == absl::StatusCode::kPermissionDenied ||
        response.status().code() == absl::StatusCode::kUnauthenticated) {
      denied = batch.key_strings;
    } else {
      failed = true;
    }
  } else {
    absl::flat_hash_set<std::string> asked(batch.key_strings.begin(),
                                           batch.key_strings.end());
    for (const v1::ResolvedKey& result : response->results()) {
      if (result.status() != v1::ResolvedKey::DENIED) continue;
      std::string ks = KeyString(result.key());
      // Only keys that were asked about: a resolver cannot revoke others.
      if (asked.erase(ks) > 0) denied.push_back(std::move(ks));
    }
  }
  size_t revoked = 0;
  for (const std::string& ks : denied) revoked += Revoke(ks, batch.credentials);
  std::vector<Batch> next;
  {
    absl::MutexLock lock(&mu_);
    --in_flight_;
    if (failed) ++stats_.failed_calls;
    stats_.revoked += revoked;
    next = TakeLocked();
  }
  Issue(std::move(next));
}

size_t Reauthorizer::Revoke(const std::string& key_string,
                            const std::string& credentials) {
  const v1::EntityKey key = KeyOfKeyString(key_string);
  v1::SubscribeResponse response;
  v1::Error* error = response.mutable_error();
  error->set_code(static_cast<int>(absl::StatusCode::kPermissionDenied));
  error->set_message("access to the key was revoked");
  *error->mutable_key() = key;
  const OutboundMessage msg =
      EncodeOutbound(response, OutboundMessage::Kind::kRevoked, key_string);
  size_t revoked = 0;
  // Copies: no hub lock is held while the sessions are touched.
  for (const SubscriberRef& ref : hub_->LookupExact(key)) {
    if (*ref.credentials != credentials) continue;
    ref.subscriber->Deliver(msg);
    ++revoked;
  }
  return revoked;
}

void Reauthorizer::Shutdown(absl::Duration timeout) {
  absl::MutexLock lock(&mu_);
  stopping_ = true;
  todo_.clear();
  mu_.AwaitWithTimeout(absl::Condition(
                           +[](size_t* n) { return *n == 0; }, &in_flight_),
                       timeout);
}

ReauthorizerStats Reauthorizer::stats() const {
  absl::MutexLock lock(&mu_);
  return stats_;
}

bool Reauthorizer::sweeping() const {
  absl::MutexLock lock(&mu_);
  return collecting_ || !todo_.empty() || in_flight_ > 0;
}

}  // namespace entitysync
