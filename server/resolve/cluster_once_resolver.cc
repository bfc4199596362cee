#include "server/resolve/cluster_once_resolver.h"

#include <utility>

#include "absl/container/flat_hash_set.h"
#include "server/core/entity_key.h"
#include "server/resolve/resolve_scheduler.h"

namespace entitysync {

ClusterOnceResolver::ClusterOnceResolver(const EntityTable* table,
                                         size_t max_row_bytes,
                                         RecordCall record)
    : table_(table),
      max_row_bytes_(max_row_bytes),
      record_(std::move(record)) {}

ClusterOnceResolver::~ClusterOnceResolver() { Shutdown(absl::ZeroDuration()); }

bool ClusterOnceResolver::Applies(const EntityRoute* route) {
  return route != nullptr &&
         route->config.resolve_mode() == v1::EntityConfig::CLUSTER_ONCE &&
         !route->config.per_credentials();
}

void ClusterOnceResolver::Resolve(std::vector<v1::Notice> notices, Done done) {
  auto request = std::make_shared<Request>();
  request->done = std::move(done);
  const size_t n = notices.size();
  {
    absl::MutexLock lock(&request->mu);
    request->notices = std::move(notices);
    request->remaining = n;
  }
  // Per entity, the keys this call starts resolving (in order).
  absl::flat_hash_map<std::string, std::vector<std::string>> to_issue;
  std::vector<Waiter> at_once;  // after Shutdown: passed on as they are
  {
    absl::MutexLock request_lock(&request->mu);
    absl::MutexLock lock(&mu_);
    absl::flat_hash_set<std::string> started_here;
    for (size_t i = 0; i < n; ++i) {
      const v1::EntityKey& key = request->notices[i].key();
      Waiter waiter{request, i};
      if (stopping_) {
        at_once.push_back(std::move(waiter));
        continue;
      }
      std::string key_string = KeyString(key);
      auto [it, inserted] = in_flight_.try_emplace(key_string);
      if (inserted) {
        it->second.key = key;
        it->second.current.push_back(std::move(waiter));
        started_here.insert(key_string);
        to_issue[key.entity()].push_back(std::move(key_string));
      } else if (started_here.contains(key_string)) {
        // The same key twice in one call: one resolve answers both.
        it->second.current.push_back(std::move(waiter));
      } else {
        it->second.next.push_back(std::move(waiter));
      }
    }
  }
  for (const Waiter& waiter : at_once) Complete(waiter, nullptr, 0);
  for (auto& [entity, keys] : to_issue) Issue(entity, std::move(keys));
}

void ClusterOnceResolver::Issue(const std::string& entity,
                                std::vector<std::string> key_strings) {
  const EntityRoute* route = table_->Find(entity);
  const size_t max_batch = std::max<size_t>(1, route->config.max_batch_keys());
  for (size_t start = 0; start < key_strings.size(); start += max_batch) {
    std::vector<std::string> batch(
        key_strings.begin() + start,
        key_strings.begin() + std::min(key_strings.size(), start + max_batch));
    v1::ResolveRequest request;
    request.set_reason(v1::ResolveRequest::CHANGE);
    {
      absl::MutexLock lock(&mu_);
      if (stopping_) return;  // Shutdown completed the waiters already
      for (const std::string& k : batch) {
        *request.add_keys() = in_flight_.at(k).key;
      }
      ++calls_in_flight_;
      ++stats_.calls;
    }
    route->client->Resolve(
        request, absl::Milliseconds(route->config.resolver().timeout_ms()),
        [this, entity, batch = std::move(batch),
         started = absl::Now()](absl::StatusOr<v1::ResolveResponse> response) {
          if (record_) record_(entity, started, response.ok());
          OnResolved(entity, batch, std::move(response));
        });
  }
}

void ClusterOnceResolver::OnResolved(
    const std::string& entity, const std::vector<std::string>& key_strings,
    absl::StatusOr<v1::ResolveResponse> response) {
  const EntityRoute* route = table_->Find(entity);
  const size_t max_row_bytes = route->config.max_row_bytes() > 0
                                   ? route->config.max_row_bytes()
                                   : max_row_bytes_;
  absl::flat_hash_map<std::string, const v1::ResolvedKey*> results;
  if (response.ok()) {
    for (const v1::ResolvedKey& r : response->results()) {
      results.emplace(KeyString(r.key()), &r);
    }
  }
  std::vector<std::pair<Waiter, const v1::ResolvedKey*>> finished;
  std::vector<std::string> follow_up;
  std::vector<Waiter> passed_on;  // follow-ups cancelled by Shutdown
  {
    absl::MutexLock lock(&mu_);
    for (const std::string& k : key_strings) {
      auto it = in_flight_.find(k);
      if (it == in_flight_.end()) continue;  // completed by Shutdown
      auto result = results.find(k);
      for (Waiter& w : it->second.current) {
        finished.emplace_back(
            std::move(w), result == results.end() ? nullptr : result->second);
      }
      it->second.current.clear();
      if (it->second.next.empty()) {
        in_flight_.erase(it);
      } else if (stopping_) {
        for (Waiter& w : it->second.next) passed_on.push_back(std::move(w));
        in_flight_.erase(it);
      } else {
        it->second.current.swap(it->second.next);
        follow_up.push_back(k);
      }
    }
  }
  for (const auto& [waiter, result] : finished) {
    Complete(waiter, result, max_row_bytes);
  }
  for (const Waiter& waiter : passed_on) Complete(waiter, nullptr, 0);
  if (!follow_up.empty()) Issue(entity, std::move(follow_up));
  // Last: Shutdown waits for this, and `this` must outlive the lines above.
  absl::MutexLock lock(&mu_);
  --calls_in_flight_;
}

void ClusterOnceResolver::Complete(const Waiter& waiter,
                                   const v1::ResolvedKey* result,
                                   size_t max_row_bytes) {
  const bool usable = result != nullptr && result->version() > 0 &&
                      (result->status() == v1::ResolvedKey::FOUND ||
                       result->status() == v1::ResolvedKey::NOT_FOUND) &&
                      RowBytes(result->rows()) <= max_row_bytes;
  {
    absl::MutexLock lock(&mu_);
    ++(usable ? stats_.resolved : stats_.passed_on);
  }
  Done done;
  std::vector<v1::Notice> notices;
  {
    Request& request = *waiter.request;
    absl::MutexLock lock(&request.mu);
    if (usable) {
      v1::Notice& notice = request.notices[waiter.index];
      notice.set_version(result->version());
      v1::Rows* rows = notice.mutable_rows();
      if (result->status() == v1::ResolvedKey::NOT_FOUND) {
        rows->set_removed(true);
      } else {
        *rows->mutable_rows() = result->rows();
      }
    }
    if (--request.remaining > 0) return;
    done = std::move(request.done);
    notices = std::move(request.notices);
  }
  done(std::move(notices));
}

void ClusterOnceResolver::Shutdown(absl::Duration timeout) {
  std::vector<Waiter> waiting;
  {
    absl::MutexLock lock(&mu_);
    stopping_ = true;
    for (auto& [key, state] : in_flight_) {
      for (Waiter& w : state.current) waiting.push_back(std::move(w));
      for (Waiter& w : state.next) waiting.push_back(std::move(w));
    }
    in_flight_.clear();
  }
  for (const Waiter& waiter : waiting) Complete(waiter, nullptr, 0);
  absl::MutexLock lock(&mu_);
  mu_.AwaitWithTimeout(absl::Condition(
                           +[](int* n) { return *n == 0; }, &calls_in_flight_),
                       timeout);
}

ClusterOnceResolver::Stats ClusterOnceResolver::stats() const {
  absl::MutexLock lock(&mu_);
  return stats_;
}

}  // namespace entitysync
