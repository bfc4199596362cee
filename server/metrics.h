// MetricsEndpoint serves a replica's Prometheus metrics (text format) at
// GET /metrics on an address of its own (default 127.0.0.1:9464), with
// prometheus-cpp's pull exposer. Nothing is computed on the hot paths: the
// server's parts bump relaxed atomic counters (server_counters.h) and the
// exporter reads them, and the gauges, when Prometheus scrapes.
//
// Metrics (all prefixed entitysync_):
//   streams, subscriptions, keys                               gauges
//   bus_connected                                              gauge 0/1
//   bus_reconnects_total                                       counter
//   notices_published_total, notices_received_total            counters
//   notify_duration_seconds                                    histogram
//   resolves_total{entity}, resolve_errors_total{entity}       counters
//   resolve_duration_seconds{entity}                           histogram
//   resolved_keys_total, updates_published_total               counters
//   updates_delivered_total, updates_conflated_total,
//   updates_dropped_total, slow_consumer_disconnects_total     counters
//
// No label carries a key id or credentials: cardinality stays bounded by
// the number of configured entity types.
#ifndef ENTITYSYNC_SERVER_METRICS_H_
#define ENTITYSYNC_SERVER_METRICS_H_

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "server/server.h"

namespace prometheus {
class Collectable;
class Exposer;
}  // namespace prometheus

namespace entitysync {

class MetricsEndpoint {
 public:
  // Serves `server`'s metrics on `address` (host:port; port 0 picks one).
  // UNAVAILABLE when the address cannot be bound. `server` must outlive the
  // endpoint.
  static absl::StatusOr<std::unique_ptr<MetricsEndpoint>> Start(
      const std::string& address, const EntitySyncServer* server);
  ~MetricsEndpoint();

  int port() const { return port_; }

 private:
  MetricsEndpoint() = default;

  std::shared_ptr<prometheus::Collectable> collectable_;
  std::unique_ptr<prometheus::Exposer> exposer_;
  int port_ = 0;
};

}  // namespace entitysync

#endif  // ENTITYSYNC_SERVER_METRICS_H_
