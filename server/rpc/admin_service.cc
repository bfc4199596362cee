#include "server/rpc/admin_service.h"

#include <algorithm>
#include <set>
#include <utility>

namespace entitysync {

AdminService::AdminService(std::string replica, const Hub* hub,
                           const ResolveScheduler* scheduler,
                           const SessionRegistry* registry, const Bus* bus,
                           const InternalAuth* auth)
    : replica_(std::move(replica)),
      hub_(hub),
      scheduler_(scheduler),
      registry_(registry),
      bus_(bus),
      auth_(auth) {}

void AdminService::Listen(IoThreads* threads) {
  Call::ListenOnEach(
      threads,
      [this](auto&&... args) {
        RequestStats(std::forward<decltype(args)>(args)...);
      },
      [this](Call* call) { Stats(call); }, /*notify_cancel=*/false, &methods_);
}

void AdminService::Stats(Call* call) {
  if (auth_ != nullptr) {
    if (grpc::Status s = auth_->Check(call->context()); !s.ok()) {
      call->Finish(s);
      return;
    }
  }
  const v1::StatsRequest* request = &call->request();
  v1::StatsResponse* response = call->response();
  const size_t top = request->top_keys() == 0
                         ? 10
                         : std::min<size_t>(request->top_keys(), 1000);
  const Hub::Counts counts = hub_->CountSubscriptions(top);
  const SchedulerStats stats = scheduler_->stats();
  const auto calls = scheduler_->call_stats();

  response->set_replica(replica_);
  response->set_streams(registry_->size());
  response->set_subscriptions(hub_->subscription_count());
  response->set_keys(hub_->key_count());
  response->set_bus_state(BusStateName(bus_->state()));
  for (const auto& [key, subscribers] : counts.top_keys) {
    v1::KeySubscribers* k = response->add_top_keys();
    *k->mutable_key() = key;
    k->set_subscribers(subscribers);
  }
  std::set<std::string> entities;
  for (const auto& [entity, n] : counts.subscriptions_by_entity) {
    entities.insert(entity);
  }
  for (const auto& [entity, c] : calls) entities.insert(entity);
  for (const std::string& entity : entities) {
    v1::EntityStats* e = response->add_entities();
    e->set_entity(entity);
    if (auto it = counts.subscriptions_by_entity.find(entity);
        it != counts.subscriptions_by_entity.end()) {
      e->set_subscriptions(it->second);
    }
    if (auto it = calls.find(entity); it != calls.end()) {
      const EntityCallStats& c = it->second;
      e->set_resolve_calls(c.calls);
      e->set_resolve_failures(c.failures);
      if (c.calls > 0) {
        e->set_resolve_latency_mean_ms(
            absl::ToDoubleMilliseconds(c.total_latency) / c.calls);
      }
      e->set_resolve_latency_max_ms(absl::ToDoubleMilliseconds(c.max_latency));
    }
  }
  response->set_updates_published(stats.updates_published);
  response->set_unchanged_skipped(stats.unchanged_skipped);
  response->set_notices_without_subscribers(stats.notices_without_subscribers);
  call->Finish(grpc::Status::OK);
}

}  // namespace entitysync
