// Relay is the whole webhook relay: one io_context run by `threads` threads
// and one EndpointRelay per configured endpoint (each with its own Subscribe
// stream, since endpoints may carry different credentials and a subscriber
// has one callback per key).
//
// Stop ends the Subscribe streams, lets requests in flight finish for up to
// `grace`, then aborts the rest. Updates still waiting are dropped: the relay
// keeps no state across restarts, and the next start POSTs every key's
// current state again (at-least-once, newest wins).
//
// Thread-safe; Stop blocks and must not be called from a relay thread.
#ifndef ENTITYSYNC_ADAPTERS_WEBHOOK_RELAY_H_
#define ENTITYSYNC_ADAPTERS_WEBHOOK_RELAY_H_

#include <boost/asio.hpp>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "adapters/webhook/endpoint_relay.h"
#include "adapters/webhook/webhook_config.h"

namespace entitysync {
namespace webhook {

struct RelayOptions {
  // host:port of entitysync's public (Subscribe) port, tried in turn.
  std::vector<std::string> targets = {"127.0.0.1:7070"};
  // Threads running HTTP requests.
  int threads = 1;
};

class Relay {
 public:
  // INVALID_ARGUMENT for unusable options.
  static absl::StatusOr<std::unique_ptr<Relay>> Start(
      std::vector<EndpointSpec> endpoints, RelayOptions options);

  Relay(const Relay&) = delete;
  Relay& operator=(const Relay&) = delete;
  ~Relay();

  // Idempotent.
  void Stop(absl::Duration grace);

 private:
  Relay() = default;

  // Declared first: destroyed after the endpoints (handlers left in it
  // point at them, and are destroyed without running).
  boost::asio::io_context io_;
  std::optional<
      boost::asio::executor_work_guard<boost::asio::io_context::executor_type>>
      work_;
  std::vector<std::unique_ptr<EndpointRelay>> endpoints_;
  std::vector<std::thread> threads_;

  absl::Mutex stop_mu_;
  bool stopped_ ABSL_GUARDED_BY(stop_mu_) = false;
};

}  // namespace webhook
}  // namespace entitysync

#endif  // ENTITYSYNC_ADAPTERS_WEBHOOK_RELAY_H_
