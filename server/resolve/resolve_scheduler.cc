#include "server/resolve/resolve_scheduler.h"

#include <algorithm>
#include <tuple>
#include <utility>

#include "absl/hash/hash.h"
#include "absl/random/random.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "server/core/config.h"
#include "server/core/entity_key.h"
#include "server/session/session_transport.h"

namespace entitysync {
namespace {

// Answers behind a notice's version (or behind an earlier answer) retried
// in a row before one is taken as it is: with the default backoff, about
// 20 s of replication lag.
constexpr uint8_t kMaxLagRetries = 8;

// Identifies rows for "unchanged" checks without copying them: each row's
// bytes and content type are folded into a running hash.
uint64_t Fingerprint(const v1::ResolvedKey& result) {
  size_t hash =
      absl::Hash<bool>{}(result.status() == v1::ResolvedKey::NOT_FOUND);
  for (const v1::Row& row : result.rows()) {
    hash =
        absl::Hash<std::tuple<size_t, absl::string_view, absl::string_view>>{}(
            {hash, row.data(), row.content_type()});
  }
  return hash;
}

absl::Status SubscribeResolveError(const std::string& entity,
                                   const absl::Status& status) {
  switch (status.code()) {
    case absl::StatusCode::kPermissionDenied:
    case absl::StatusCode::kUnauthenticated:
    case absl::StatusCode::kInvalidArgument:
      return status;
    default:
      return absl::UnavailableError(absl::StrCat(
          "resolver for '", entity, "' failed: ",
          absl::StatusCodeToString(status.code()), ": ", status.message()));
  }
}

}  // namespace

size_t RowBytes(const google::protobuf::RepeatedPtrField<v1::Row>& rows) {
  size_t n = 0;
  for (const v1::Row& row : rows) n += row.data().size();
  return n;
}

ResolveScheduler::ResolveScheduler(const EntityTable* table, const Hub* hub,
                                   Executor* executor, VersionClock* clock,
                                   SchedulerOptions options)
    : table_(table),
      hub_(hub),
      executor_(executor),
      clock_(clock),
      options_(options) {}

ResolveScheduler::~ResolveScheduler() { Shutdown(absl::Seconds(5)); }

size_t ResolveScheduler::tracked_keys() const {
  absl::MutexLock lock(&mu_);
  return keys_.size();
}

SchedulerStats ResolveScheduler::stats() const {
  absl::MutexLock lock(&mu_);
  return stats_;
}

ResolveScheduler::UnitState& ResolveScheduler::UnitLocked(
    const v1::EntityKey& key, const std::string& key_string,
    const std::string& credentials, bool per_credentials) {
  KeyState& ks = keys_[key_string];
  auto [it, inserted] = ks.units.try_emplace(credentials);
  if (inserted) {
    it->second.key = key;
    it->second.credentials = credentials;
    it->second.per_credentials = per_credentials;
  }
  return it->second;
}

ResolveScheduler::UnitState* ResolveScheduler::FindUnitLocked(
    const std::string& key_string, const std::string& credentials) {
  auto k = keys_.find(key_string);
  if (k == keys_.end()) return nullptr;
  auto u = k->second.units.find(credentials);
  return u == k->second.units.end() ? nullptr : &u->second;
}

void ResolveScheduler::OnNotice(const v1::Notice& notice) {
  const v1::EntityKey& key = notice.key();
  if (!hub_->HasSubscribers(key)) {
    absl::MutexLock lock(&mu_);
    ++stats_.notices_without_subscribers;
    return;
  }
  const std::string key_string = KeyString(key);
  const EntityRoute* route = table_->Find(key.entity());
  const bool per_credentials =
      route != nullptr && route->config.per_credentials();

  if (notice.has_rows() && !per_credentials) {
    v1::ResolvedKey result;
    *result.mutable_key() = key;
    result.set_status(notice.rows().removed() ? v1::ResolvedKey::NOT_FOUND
                                              : v1::ResolvedKey::FOUND);
    *result.mutable_rows() = notice.rows().rows();
    if (RowBytes(result.rows()) > options_.max_row_bytes) return;
    const uint64_t version =
        notice.has_version() ? notice.version() : clock_->Next();
    bool drain;
    {
      absl::MutexLock lock(&mu_);
      UnitState& unit = UnitLocked(key, key_string, "", false);
      // Inline rows keep a resolver-versioned key on its resolver's versions.
      if (unit.version_source == VersionSource::kNone ||
          unit.version_source == VersionSource::kNotice) {
        unit.version_source = notice.has_version() ? VersionSource::kNotice
                                                   : VersionSource::kClock;
      }
      drain = PublishLocked(unit, version, /*refresh=*/false, result);
    }
    if (drain) Drain(key_string, "");
    return;
  }
  if (route == nullptr) return;  // Open mode: nothing to resolve.

  const std::vector<std::string> credentials =
      CredentialsFor(key, per_credentials);
  absl::MutexLock lock(&mu_);
  for (const std::string& c : credentials) {
    UnitState& unit = UnitLocked(key, key_string, c, per_credentials);
    if (notice.has_version()) {
      unit.notice_version = std::max(unit.notice_version, notice.version());
    }
    MarkDirtyLocked(unit, key_string);
  }
}

void ResolveScheduler::ResyncAll() {
  for (const v1::EntityKey& key : hub_->Keys()) {
    const EntityRoute* route = table_->Find(key.entity());
    if (route == nullptr) continue;
    const std::vector<std::string> credentials =
        CredentialsFor(key, route->config.per_credentials());
    const std::string key_string = KeyString(key);
    absl::MutexLock lock(&mu_);
    for (const std::string& c : credentials) {
      MarkDirtyLocked(
          UnitLocked(key, key_string, c, route->config.per_credentials()),
          key_string);
    }
  }
}

void ResolveScheduler::Forget(const v1::EntityKey& key) {
  absl::MutexLock lock(&mu_);
  if (!IsWildcard(key)) {
    MaybeEraseLocked(KeyString(key));
    return;
  }
  // The entity's wildcard went away: its ids kept only for it go too.
  const std::string prefix = absl::StrCat(key.entity(), "/");
  std::vector<std::string> candidates;
  for (const auto& [key_string, state] : keys_) {
    if (absl::StartsWith(key_string, prefix)) candidates.push_back(key_string);
  }
  for (const std::string& key_string : candidates) MaybeEraseLocked(key_string);
}

void ResolveScheduler::MarkDirtyLocked(UnitState& unit,
                                       const std::string& key_string) {
  if (stopping_) return;
  if (unit.in_flight || unit.retry_scheduled) {
    // Coalesced: one follow-up resolve after the one in flight (or the
    // retry) covers every notice that arrives meanwhile.
    unit.dirty = true;
    return;
  }
  if (unit.queued) return;
  unit.queued = true;
  entities_[unit.key.entity()].pending.emplace_back(key_string,
                                                    unit.credentials);
  PostFlushLocked(unit.key.entity());
}

void ResolveScheduler::PostFlush(std::function<void()> flush) {
  if (options_.post_flush) {
    options_.post_flush(std::move(flush));
  } else {
    executor_->Post(std::move(flush));
  }
}

void ResolveScheduler::PostFlushLocked(const std::string& entity) {
  EntityState& es = entities_[entity];
  if (es.flush_posted || stopping_) return;
  es.flush_posted = true;
  // Flushing on another thread (not the notice's) lets notices that arrive
  // meanwhile join the same batch, at no added latency when idle.
  PostFlush([this, entity] { Flush(entity); });
}

void ResolveScheduler::Flush(const std::string& entity) {
  const EntityRoute* route = table_->Find(entity);
  std::vector<std::vector<IssuedUnit>> calls;
  {
    absl::MutexLock lock(&mu_);
    EntityState& es = entities_[entity];
    es.flush_posted = false;
    if (route == nullptr) {
      es.pending.clear();
      return;
    }
    const size_t max_batch = route->config.max_batch_keys();
    const int max_calls =
        static_cast<int>(route->config.max_concurrent_resolves());
    while (!stopping_ && es.calls_in_flight < max_calls &&
           !es.pending.empty()) {
      const std::string credentials = es.pending.front().second;
      std::vector<IssuedUnit> batch;
      std::deque<std::pair<std::string, std::string>> rest;
      for (auto& item : es.pending) {
        if (batch.size() >= max_batch || item.second != credentials) {
          rest.push_back(std::move(item));
          continue;
        }
        UnitState* unit = FindUnitLocked(item.first, item.second);
        if (unit == nullptr || !unit->queued) continue;
        unit->queued = false;
        unit->in_flight = true;
        unit->dirty = false;
        batch.push_back(IssuedUnit{item.first, item.second, unit->key,
                                   unit->notice_version, clock_->Next()});
        unit->notice_version = 0;
      }
      es.pending.swap(rest);
      if (batch.empty()) continue;
      ++es.calls_in_flight;
      ++calls_in_flight_;
      ++stats_.resolve_calls;
      stats_.resolved_keys += batch.size();
      calls.push_back(std::move(batch));
    }
  }
  for (std::vector<IssuedUnit>& batch : calls) {
    v1::ResolveRequest request;
    request.set_reason(v1::ResolveRequest::CHANGE);
    if (route->config.per_credentials()) {
      request.set_credentials(batch.front().credentials);
    }
    for (const IssuedUnit& unit : batch) *request.add_keys() = unit.key;
    route->client->Resolve(
        request, absl::Milliseconds(route->config.resolver().timeout_ms()),
        [this, entity, batch = std::move(batch), started = absl::Now()](
            absl::StatusOr<v1::ResolveResponse> response) mutable {
          RecordCall(entity, started, response.ok());
          OnResolved(entity, std::move(batch), std::move(response));
        });
  }
}

void ResolveScheduler::OnResolved(
    const std::string& entity, std::vector<IssuedUnit> batch,
    absl::StatusOr<v1::ResolveResponse> response) {
  const EntityRoute* route = table_->Find(entity);
  const size_t max_row_bytes = route->config.max_row_bytes() > 0
                                   ? route->config.max_row_bytes()
                                   : options_.max_row_bytes;
  absl::flat_hash_map<std::string, const v1::ResolvedKey*> results;
  if (response.ok()) {
    for (const v1::ResolvedKey& r : response->results()) {
      results.emplace(KeyString(r.key()), &r);
    }
  }
  std::vector<std::pair<std::string, std::string>> drain;
  {
    absl::MutexLock lock(&mu_);
    --entities_[entity].calls_in_flight;
    for (const IssuedUnit& issued : batch) {
      Outcome outcome;
      if (!response.ok()) {
        outcome.kind =
            response.status().code() == absl::StatusCode::kPermissionDenied ||
                    response.status().code() ==
                        absl::StatusCode::kUnauthenticated
                ? Outcome::Kind::kDenied
                : Outcome::Kind::kFailed;
        outcome.reason =
            absl::StrCat("resolver failed: ",
                         absl::StatusCodeToString(response.status().code()),
                         ": ", response.status().message());
      } else if (auto it = results.find(issued.key_string);
                 it == results.end()) {
        outcome.reason = "resolver returned no result for the key";
      } else if (it->second->status() == v1::ResolvedKey::DENIED) {
        outcome.kind = Outcome::Kind::kDenied;
      } else if (size_t bytes = RowBytes(it->second->rows());
                 bytes > max_row_bytes) {
        outcome.reason = absl::StrCat("resolved rows are ", bytes,
                                      " bytes; the limit is ", max_row_bytes);
      } else {
        outcome.kind = Outcome::Kind::kResolved;
        outcome.result = *it->second;
      }
      ApplyOutcomeLocked(entity, issued, outcome, &drain);
    }
    if (!entities_[entity].pending.empty()) PostFlushLocked(entity);
  }
  for (const auto& [key_string, credentials] : drain)
    Drain(key_string, credentials);
  CallFinished();
}

void ResolveScheduler::ApplyOutcomeLocked(
    const std::string& entity, const IssuedUnit& issued, const Outcome& outcome,
    std::vector<std::pair<std::string, std::string>>* drain) {
  UnitState* unit = FindUnitLocked(issued.key_string, issued.credentials);
  if (unit == nullptr) return;
  unit->in_flight = false;
  bool queued = false;
  Outcome::Kind kind = outcome.kind;
  std::string reason = outcome.reason;
  if (kind == Outcome::Kind::kDenied && !unit->per_credentials) {
    // Shared entities are resolved on behalf of every subscriber; a denial
    // here is a resolver fault, not a revocation.
    kind = Outcome::Kind::kFailed;
    reason = "resolver denied the change-time resolve";
  }
  // The resolver's versions only grow: an answer older than the version a
  // notice announced, or than one it gave before, comes from behind (a
  // lagging read replica, a stale cache) and lacks the change it was asked
  // about. It is asked again, with backoff, and subscribers are told their
  // view may be out of date meanwhile. After kMaxLagRetries such answers in
  // a row the answer is taken as it is: a notice version from another clock
  // (or a huge one) must not freeze the key.
  if (kind == Outcome::Kind::kResolved && outcome.result.version() > 0) {
    const uint64_t answered = outcome.result.version();
    uint64_t expected = 0;
    if (issued.notice_version > answered) {
      expected = issued.notice_version;
    } else if (unit->has_delivered &&
               unit->version_source == VersionSource::kResolver &&
               answered < unit->delivered_version) {
      expected = unit->delivered_version;
    }
    if (expected > 0 && unit->lag_retries < kMaxLagRetries) {
      ++unit->lag_retries;
      ++stats_.older_dropped;
      kind = Outcome::Kind::kFailed;
      reason = absl::StrCat("resolver answered version ", answered,
                            ", behind version ", expected);
    } else {
      unit->lag_retries = 0;
    }
  }
  switch (kind) {
    case Outcome::Kind::kResolved: {
      unit->failures = 0;
      const v1::ResolvedKey& result = outcome.result;
      uint64_t version;
      bool refresh = false;
      const bool delivered = unit->has_delivered;
      if (result.version() > 0) {
        version = result.version();
        unit->version_source = VersionSource::kResolver;
      } else if (issued.notice_version > 0) {
        version = issued.notice_version;
        unit->version_source = VersionSource::kNotice;
      } else if (delivered &&
                 unit->version_source == VersionSource::kResolver &&
                 result.status() == v1::ResolvedKey::NOT_FOUND) {
        // An unversioned deletion of a key versioned by its resolver: the
        // next version after the last one delivered (a replica clock value
        // would hide every later resolver version).
        version = unit->delivered_version + 1;
      } else if (delivered && unit->version_source == VersionSource::kNotice) {
        // Versions of this key come from notices; a resolve without one
        // (a resync) keeps the version and refreshes the rows.
        version = unit->delivered_version;
        refresh = true;
      } else {
        version = issued.clock_version;
        unit->version_source = VersionSource::kClock;
      }
      queued = PublishLocked(*unit, version, refresh, result);
      if (unit->dirty) {
        unit->dirty = false;
        MarkDirtyLocked(*unit, issued.key_string);
      }
      break;
    }
    case Outcome::Kind::kDenied: {
      v1::SubscribeResponse response;
      v1::Error* error = response.mutable_error();
      error->set_code(static_cast<int>(absl::StatusCode::kPermissionDenied));
      error->set_message("access to the key was revoked");
      *error->mutable_key() = unit->key;
      QueueDeliveryLocked(
          *unit, EncodeOutbound(response, OutboundMessage::Kind::kRevoked,
                                issued.key_string));
      unit->dirty = false;
      queued = true;
      break;
    }
    case Outcome::Kind::kFailed: {
      ++stats_.resolve_failures;
      ++unit->failures;
      unit->dirty = false;
      // The retry must still bring what the notices announced.
      unit->notice_version =
          std::max(unit->notice_version, issued.notice_version);
      if (!unit->stale) {
        unit->stale = true;
        v1::SubscribeResponse response;
        *response.mutable_stale()->mutable_key() = unit->key;
        response.mutable_stale()->set_reason(reason);
        QueueDeliveryLocked(
            *unit, EncodeOutbound(response, OutboundMessage::Kind::kStale,
                                  issued.key_string));
        queued = true;
      }
      ScheduleRetryLocked(*unit, issued.key_string);
      break;
    }
  }
  if (queued) {
    drain->emplace_back(issued.key_string, issued.credentials);
  } else {
    MaybeEraseLocked(issued.key_string);
  }
}

bool ResolveScheduler::PublishLocked(UnitState& unit, uint64_t version,
                                     bool refresh,
                                     const v1::ResolvedKey& result) {
  const uint64_t hash = Fingerprint(result);
  const bool recovering = unit.stale;
  if (unit.has_delivered) {
    if (version < unit.delivered_version) {
      ++stats_.older_dropped;
      unit.stale = false;
      return false;
    }
    if (version == unit.delivered_version && !refresh && !recovering) {
      ++stats_.unchanged_skipped;
      return false;
    }
    if (hash == unit.delivered_hash && !recovering) {
      unit.delivered_version = version;
      ++stats_.unchanged_skipped;
      return false;
    }
  }
  v1::SubscribeResponse response;
  v1::Update* update = response.mutable_update();
  *update->mutable_key() = unit.key;
  update->set_version(version);
  if (result.status() == v1::ResolvedKey::NOT_FOUND) {
    update->set_removed(true);
  } else {
    *update->mutable_rows() = result.rows();
  }
  OutboundMessage msg = EncodeOutbound(response, OutboundMessage::Kind::kUpdate,
                                       KeyString(unit.key), version);
  msg.refresh = unit.has_delivered && version == unit.delivered_version;
  unit.has_delivered = true;
  unit.delivered_version = version;
  unit.delivered_hash = hash;
  unit.stale = false;
  ++stats_.updates_published;
  QueueDeliveryLocked(unit, std::move(msg));
  return true;
}

void ResolveScheduler::QueueDeliveryLocked(UnitState& unit,
                                           OutboundMessage msg) {
  if (msg.kind == OutboundMessage::Kind::kUpdate) {
    // Full state: supersedes any update or stale signal not yet delivered.
    unit.next.erase(std::remove_if(unit.next.begin(), unit.next.end(),
                                   [](const Delivery& d) {
                                     return d.msg.kind !=
                                            OutboundMessage::Kind::kRevoked;
                                   }),
                    unit.next.end());
  }
  unit.next.push_back(Delivery{std::move(msg)});
}

void ResolveScheduler::ScheduleRetryLocked(UnitState& unit,
                                           const std::string& key_string) {
  if (unit.retry_scheduled || stopping_) return;
  unit.retry_scheduled = true;
  absl::Duration delay = options_.retry_initial;
  for (int i = 1; i < unit.failures && delay < options_.retry_max; ++i)
    delay *= 2;
  delay = std::min(delay, options_.retry_max);
  // Jitter in [delay/2, delay] spreads retries of many keys and replicas.
  static thread_local absl::BitGen gen;
  delay = delay / 2 + absl::Uniform(gen, 0.0, 1.0) * (delay / 2);
  executor_->PostAfter(delay,
                       [this, key_string, credentials = unit.credentials] {
                         absl::MutexLock lock(&mu_);
                         UnitState* u = FindUnitLocked(key_string, credentials);
                         if (u == nullptr) return;
                         u->retry_scheduled = false;
                         if (!HasSubscriberLocked(*u)) {
                           u->dirty = false;
                           MaybeEraseLocked(key_string);
                           return;
                         }
                         u->dirty = false;
                         MarkDirtyLocked(*u, key_string);
                       });
}

std::vector<std::string> ResolveScheduler::CredentialsFor(
    const v1::EntityKey& key, bool per_credentials) const {
  if (!per_credentials) return {""};
  std::vector<std::string> credentials;
  for (const SubscriberRef& ref : hub_->Lookup(key)) {
    credentials.push_back(*ref.credentials);
  }
  std::sort(credentials.begin(), credentials.end());
  credentials.erase(std::unique(credentials.begin(), credentials.end()),
                    credentials.end());
  return credentials;
}

bool ResolveScheduler::HasSubscriberLocked(const UnitState& unit) const {
  if (!unit.per_credentials) return hub_->HasSubscribers(unit.key);
  for (const SubscriberRef& ref : hub_->Lookup(unit.key)) {
    if (*ref.credentials == unit.credentials) return true;
  }
  return false;
}

void ResolveScheduler::MaybeEraseLocked(const std::string& key_string) {
  auto it = keys_.find(key_string);
  if (it == keys_.end()) return;
  KeyState& ks = it->second;
  for (auto u = ks.units.begin(); u != ks.units.end();) {
    const UnitState& unit = u->second;
    const bool busy = unit.queued || unit.in_flight || unit.retry_scheduled ||
                      unit.delivering || !unit.next.empty();
    // A key seen only through a wildcard keeps its state (for version
    // ordering) until the table passes max_idle_keys; a key nobody holds
    // any more is forgotten at once.
    const bool held = unit.per_credentials
                          ? HasSubscriberLocked(unit)
                          : hub_->HasExactSubscribers(unit.key) ||
                                (hub_->HasSubscribers(unit.key) &&
                                 keys_.size() <= options_.max_idle_keys);
    if (busy || held) {
      ++u;
    } else {
      ks.units.erase(u++);
    }
  }
  if (ks.units.empty()) keys_.erase(it);
}

void ResolveScheduler::Drain(const std::string& key_string,
                             const std::string& credentials) {
  bool first = true;
  for (;;) {
    OutboundMessage msg;
    v1::EntityKey key;
    bool per_credentials;
    {
      absl::MutexLock lock(&mu_);
      UnitState* unit = FindUnitLocked(key_string, credentials);
      if (unit == nullptr) return;
      if (first) {
        if (unit->delivering) return;  // The other thread delivers ours too.
        unit->delivering = true;
        first = false;
      }
      if (unit->next.empty()) {
        unit->delivering = false;
        MaybeEraseLocked(key_string);
        return;
      }
      msg = std::move(unit->next.front().msg);
      unit->next.erase(unit->next.begin());
      key = unit->key;
      per_credentials = unit->per_credentials;
    }
    // Sessions on other I/O threads are woken once per thread, at the end.
    DeliveryBatch batch;
    for (const SubscriberRef& ref : hub_->Lookup(key)) {
      if (per_credentials && *ref.credentials != credentials) continue;
      ref.subscriber->Deliver(msg);
    }
  }
}

void ResolveScheduler::ResolveForSubscribe(const v1::EntityKey& key,
                                           const std::string& credentials,
                                           SnapshotCallback done) {
  const EntityRoute* route = table_->Find(key.entity());
  if (route == nullptr) {
    done(absl::NotFoundError(
        absl::StrCat("unknown entity '", key.entity(), "'")));
    return;
  }
  bool stopping;
  bool post = false;
  {
    absl::MutexLock lock(&mu_);
    stopping = stopping_;
    if (!stopping) {
      ++stats_.subscribe_requests;
      EntityState& es = entities_[key.entity()];
      auto [group, inserted] = es.subscribe_groups.try_emplace(credentials);
      if (inserted) es.subscribe_order.push_back(credentials);
      std::vector<SnapshotCallback>& waiting =
          group->second.waiters[KeyString(key)];
      if (waiting.empty()) group->second.keys.push_back(key);
      waiting.push_back(std::move(done));
      if (!es.subscribe_flush_posted) {
        es.subscribe_flush_posted = true;
        post = true;
      }
    }
  }
  if (stopping) {
    // Called without the lock: `done` may call back into the scheduler.
    done(absl::UnavailableError("server is shutting down"));
    return;
  }
  // On the executor, so that requests arriving meanwhile join the batch.
  if (post) {
    PostFlush([this, entity = key.entity()] { FlushSubscribes(entity); });
  }
}

void ResolveScheduler::TakeSubscribeWaiters(
    EntityState& es, std::vector<SnapshotCallback>* out) {
  for (auto& [credentials, group] : es.subscribe_groups) {
    for (auto& [key_string, waiting] : group.waiters) {
      for (SnapshotCallback& cb : waiting) out->push_back(std::move(cb));
    }
  }
  es.subscribe_groups.clear();
  es.subscribe_order.clear();
}

void ResolveScheduler::FlushSubscribes(const std::string& entity) {
  const EntityRoute* route = table_->Find(entity);
  std::vector<SubscribeCall> calls;
  std::vector<SnapshotCallback> refused;  // after Shutdown
  {
    absl::MutexLock lock(&mu_);
    EntityState& es = entities_[entity];
    es.subscribe_flush_posted = false;
    if (stopping_) TakeSubscribeWaiters(es, &refused);
    // Tables built in code may leave the limits at 0: their defaults then.
    const size_t max_batch = route->config.max_batch_keys() > 0
                                 ? route->config.max_batch_keys()
                                 : kDefaultMaxBatchKeys;
    const int max_calls =
        static_cast<int>(route->config.max_concurrent_subscribe_resolves() > 0
                             ? route->config.max_concurrent_subscribe_resolves()
                             : kDefaultMaxConcurrentSubscribeResolves);
    while (!stopping_ && es.subscribe_calls_in_flight < max_calls &&
           !es.subscribe_order.empty()) {
      auto group = es.subscribe_groups.find(es.subscribe_order.front());
      SubscribeCall call;
      call.credentials = group->first;
      call.request.set_credentials(group->first);
      call.request.set_reason(v1::ResolveRequest::SUBSCRIBE);
      std::vector<v1::EntityKey>& keys = group->second.keys;
      const size_t n = std::min(max_batch, keys.size());
      for (size_t i = 0; i < n; ++i) {
        std::string key_string = KeyString(keys[i]);
        auto waiting = group->second.waiters.extract(key_string);
        call.keys.emplace_back(std::move(key_string),
                               std::move(waiting.mapped()));
        *call.request.add_keys() = std::move(keys[i]);
      }
      keys.erase(keys.begin(), keys.begin() + n);
      if (keys.empty()) {
        es.subscribe_groups.erase(group);
        es.subscribe_order.pop_front();
      }
      ++es.subscribe_calls_in_flight;
      ++calls_in_flight_;
      ++stats_.subscribe_calls;
      calls.push_back(std::move(call));
    }
  }
  for (SnapshotCallback& cb : refused) {
    cb(absl::UnavailableError("server is shutting down"));
  }
  for (SubscribeCall& call : calls) {
    v1::ResolveRequest request = std::move(call.request);
    route->client->Resolve(
        request, absl::Milliseconds(route->config.resolver().timeout_ms()),
        [this, entity, call = std::move(call), started = absl::Now()](
            absl::StatusOr<v1::ResolveResponse> response) mutable {
          OnSubscribeResolved(entity, std::move(call), started,
                              std::move(response));
        });
  }
}

void ResolveScheduler::OnSubscribeResolved(
    const std::string& entity, SubscribeCall call, absl::Time started,
    absl::StatusOr<v1::ResolveResponse> response) {
  RecordCall(entity, started, response.ok());
  const EntityRoute* route = table_->Find(entity);
  const size_t max_row_bytes = route->config.max_row_bytes() > 0
                                   ? route->config.max_row_bytes()
                                   : options_.max_row_bytes;
  // Versions of keys without resolver versions are looked up per unit.
  const std::string& unit_credentials =
      route->config.per_credentials() ? call.credentials : std::string();
  absl::flat_hash_map<std::string, const v1::ResolvedKey*> results;
  if (response.ok()) {
    for (const v1::ResolvedKey& r : response->results()) {
      results.emplace(KeyString(r.key()), &r);
    }
  }
  for (auto& [key_string, waiting] : call.keys) {
    absl::StatusOr<Snapshot> out;
    auto found = results.find(key_string);
    if (!response.ok()) {
      out = SubscribeResolveError(entity, response.status());
    } else if (found == results.end()) {
      out = absl::InternalError("resolver returned no result for the key");
    } else if (found->second->status() == v1::ResolvedKey::DENIED) {
      out = absl::PermissionDeniedError("access denied by the resolver");
    } else if (size_t bytes = RowBytes(found->second->rows());
               bytes > max_row_bytes) {
      out = absl::ResourceExhaustedError(absl::StrCat(
          "resolved rows are ", bytes, " bytes; the limit is ", max_row_bytes));
    } else {
      const v1::ResolvedKey& r = *found->second;
      Snapshot snapshot;
      snapshot.status = r.status();
      // NOT_FOUND without a version means "nothing yet": version 0, so
      // that the creation supersedes it whatever its version source.
      // Without a resolver version the snapshot takes the version the
      // replica last delivered for the key (its next update is newer
      // whatever its source: notice or clock), or 0 when there is none,
      // so that no later version source can be shadowed by it.
      snapshot.version = r.version() > 0
                             ? r.version()
                             : DeliveredVersion(key_string, unit_credentials);
      snapshot.rows.assign(r.rows().begin(), r.rows().end());
      out = std::move(snapshot);
    }
    for (size_t i = 0; i < waiting.size(); ++i) {
      waiting[i](i + 1 < waiting.size() ? out : std::move(out));
    }
  }
  bool post = false;
  {
    absl::MutexLock lock(&mu_);
    EntityState& es = entities_[entity];
    --es.subscribe_calls_in_flight;
    if (!es.subscribe_order.empty() && !es.subscribe_flush_posted) {
      es.subscribe_flush_posted = true;
      post = true;
    }
  }
  if (post) PostFlush([this, entity] { FlushSubscribes(entity); });
  CallFinished();
}

uint64_t ResolveScheduler::DeliveredVersion(const std::string& key_string,
                                            const std::string& credentials) {
  absl::MutexLock lock(&mu_);
  UnitState* unit = FindUnitLocked(key_string, credentials);
  return unit != nullptr && unit->has_delivered ? unit->delivered_version : 0;
}

void ResolveScheduler::RecordCall(const std::string& entity, absl::Time started,
                                  bool ok) {
  const absl::Duration latency = absl::Now() - started;
  absl::MutexLock lock(&mu_);
  EntityCallStats& stats = call_stats_[entity];
  ++stats.calls;
  if (!ok) ++stats.failures;
  stats.total_latency += latency;
  stats.max_latency = std::max(stats.max_latency, latency);
  ++stats.latency_buckets[LatencyHistogram::Bucket(latency)];
}

absl::flat_hash_map<std::string, EntityCallStats> ResolveScheduler::call_stats()
    const {
  absl::MutexLock lock(&mu_);
  return call_stats_;
}

void ResolveScheduler::CallFinished() {
  absl::MutexLock lock(&mu_);
  --calls_in_flight_;
}

void ResolveScheduler::Shutdown(absl::Duration timeout) {
  std::vector<SnapshotCallback> refused;  // subscribes not yet issued
  {
    absl::MutexLock lock(&mu_);
    stopping_ = true;
    for (auto& [entity, es] : entities_) TakeSubscribeWaiters(es, &refused);
  }
  for (SnapshotCallback& cb : refused) {
    cb(absl::UnavailableError("server is shutting down"));
  }
  absl::MutexLock lock(&mu_);
  mu_.AwaitWithTimeout(absl::Condition(
                           +[](int* n) { return *n == 0; }, &calls_in_flight_),
                       timeout);
}

}  // namespace entitysync
