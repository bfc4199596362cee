#include "server/metrics.h"

#include <exception>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "prometheus/collectable.h"
#include "prometheus/exposer.h"
#include "prometheus/metric_family.h"

namespace entitysync {
namespace {

using prometheus::ClientMetric;
using prometheus::MetricFamily;
using prometheus::MetricType;

MetricFamily Family(std::string name, std::string help, MetricType type) {
  MetricFamily family;
  family.name = absl::StrCat("entitysync_", name);
  family.help = std::move(help);
  family.type = type;
  return family;
}

MetricFamily Single(std::string name, std::string help, MetricType type,
                    double value) {
  MetricFamily family = Family(std::move(name), std::move(help), type);
  ClientMetric metric;
  if (type == MetricType::Counter) {
    metric.counter.value = value;
  } else {
    metric.gauge.value = value;
  }
  family.metric.push_back(std::move(metric));
  return family;
}

ClientMetric::Histogram ToHistogram(const LatencyHistogram::Counts& counts,
                                    double sum_seconds) {
  ClientMetric::Histogram histogram;
  uint64_t cumulative = 0;
  for (size_t i = 0; i < counts.size(); ++i) {
    cumulative += counts[i];
    ClientMetric::Bucket bucket;
    bucket.cumulative_count = cumulative;
    bucket.upper_bound = i < LatencyHistogram::kBounds.size()
                             ? LatencyHistogram::kBounds[i]
                             : std::numeric_limits<double>::infinity();
    histogram.bucket.push_back(bucket);
  }
  histogram.sample_count = cumulative;
  histogram.sample_sum = sum_seconds;
  return histogram;
}

double Load(const std::atomic<uint64_t>& counter) {
  return static_cast<double>(counter.load(std::memory_order_relaxed));
}

class ServerCollectable : public prometheus::Collectable {
 public:
  explicit ServerCollectable(const EntitySyncServer* server)
      : server_(server) {}

  std::vector<MetricFamily> Collect() const override {
    const ServerCounters& c = server_->counters();
    const SchedulerStats stats = server_->scheduler_stats();
    std::vector<MetricFamily> out;
    out.push_back(Single("streams", "Open Subscribe streams.",
                         MetricType::Gauge, server_->stream_count()));
    out.push_back(Single("subscriptions", "Subscriptions on this replica.",
                         MetricType::Gauge,
                         server_->hub().subscription_count()));
    out.push_back(Single("keys", "Keys with at least one subscriber.",
                         MetricType::Gauge, server_->hub().key_count()));
    out.push_back(Single("bus_connected", "1 while the bus is connected.",
                         MetricType::Gauge,
                         server_->bus_state() == BusState::kConnected ? 1 : 0));
    out.push_back(Single("bus_reconnects_total",
                         "Bus connections regained after a loss.",
                         MetricType::Counter, Load(c.bus_reconnects)));
    out.push_back(Single("notices_published_total",
                         "Changes accepted by Notify and published.",
                         MetricType::Counter, Load(c.notices_published)));
    out.push_back(Single("notices_received_total",
                         "Change notices received from the bus.",
                         MetricType::Counter, Load(c.notices_received)));
    {
      MetricFamily notify = Family("notify_duration_seconds",
                                   "Time to validate and publish a Notify.",
                                   MetricType::Histogram);
      ClientMetric metric;
      metric.histogram = ToHistogram(c.notify_latency.counts(),
                                     c.notify_latency.sum_seconds());
      notify.metric.push_back(std::move(metric));
      out.push_back(std::move(notify));
    }
    MetricFamily resolves = Family(
        "resolves_total", "Resolver calls, by entity.", MetricType::Counter);
    MetricFamily errors =
        Family("resolve_errors_total", "Resolver calls that failed, by entity.",
               MetricType::Counter);
    MetricFamily latency =
        Family("resolve_duration_seconds", "Resolver call latency, by entity.",
               MetricType::Histogram);
    for (const auto& [entity, calls] : server_->call_stats()) {
      ClientMetric metric;
      metric.label.push_back({"entity", entity});
      metric.counter.value = static_cast<double>(calls.calls);
      resolves.metric.push_back(metric);
      metric.counter.value = static_cast<double>(calls.failures);
      errors.metric.push_back(metric);
      metric.histogram = ToHistogram(
          calls.latency_buckets, absl::ToDoubleSeconds(calls.total_latency));
      latency.metric.push_back(std::move(metric));
    }
    out.push_back(std::move(resolves));
    out.push_back(std::move(errors));
    out.push_back(std::move(latency));
    out.push_back(Single("resolved_keys_total", "Keys resolved.",
                         MetricType::Counter, stats.resolved_keys));
    out.push_back(Single("updates_published_total",
                         "Updates serialized for the local subscribers of a "
                         "key (each once, whatever the subscriber count).",
                         MetricType::Counter, stats.updates_published));
    out.push_back(Single("updates_delivered_total",
                         "Update messages written to streams.",
                         MetricType::Counter, Load(c.updates_delivered)));
    out.push_back(Single("updates_conflated_total",
                         "Pending updates replaced by a newer one of the "
                         "same key in a slow stream's queue.",
                         MetricType::Counter, Load(c.updates_conflated)));
    out.push_back(Single("updates_dropped_total",
                         "Pending messages discarded with a stream closed "
                         "for not keeping up.",
                         MetricType::Counter, Load(c.updates_dropped)));
    out.push_back(Single("slow_consumer_disconnects_total",
                         "Streams closed with RESOURCE_EXHAUSTED for not "
                         "reading their updates.",
                         MetricType::Counter,
                         Load(c.slow_consumer_disconnects)));
    return out;
  }

 private:
  const EntitySyncServer* const server_;
};

}  // namespace

absl::StatusOr<std::unique_ptr<MetricsEndpoint>> MetricsEndpoint::Start(
    const std::string& address, const EntitySyncServer* server) {
  std::unique_ptr<MetricsEndpoint> endpoint(new MetricsEndpoint());
  // civetweb reports a bind failure as an exception; it stops here.
  try {
    endpoint->exposer_ = std::make_unique<prometheus::Exposer>(address, 1);
  } catch (const std::exception& e) {
    return absl::UnavailableError(
        absl::StrCat("metrics cannot listen on ", address, ": ", e.what()));
  }
  endpoint->collectable_ = std::make_shared<ServerCollectable>(server);
  endpoint->exposer_->RegisterCollectable(endpoint->collectable_);
  const std::vector<int> ports = endpoint->exposer_->GetListeningPorts();
  endpoint->port_ = ports.empty() ? 0 : ports.front();
  return endpoint;
}

MetricsEndpoint::~MetricsEndpoint() = default;

}  // namespace entitysync
