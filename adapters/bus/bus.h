// Bus: carries change notices between replicas.
//
// A replica publishes every accepted change as a Notice and receives the
// notices for keys it has declared interest in. Interest is per key, or per
// entity with the wildcard id "*". Delivery is at most once (core NATS
// semantics): the server repairs gaps by resolving again, so a bus reports
// every moment it may have lost notices (reconnect, slow-consumer drop)
// through OnResync, and the server then re-resolves every key it serves.
//
// Implementations: InProcessBus (one replica, the default) and, later,
// NatsBus. All methods are thread-safe and must not block for long:
// AddInterest and RemoveInterest are called with hub locks held.
#ifndef ENTITYSYNC_ADAPTERS_BUS_BUS_H_
#define ENTITYSYNC_ADAPTERS_BUS_BUS_H_

#include <functional>
#include <string>

#include "absl/status/status.h"
#include "entitysync/v1/bus.pb.h"

namespace entitysync {

enum class BusState {
  kConnected,
  kDisconnected,
};

const char* BusStateName(BusState state);

struct BusHandlers {
  // A notice for a key this replica declared interest in. Payloads from other
  // replicas are untrusted: the handler validates them. Must not block.
  std::function<void(const v1::Notice&)> on_notice;
  // Notices may have been lost: resolve every served key again.
  std::function<void()> on_resync;
  std::function<void(BusState)> on_state;
};

class Bus {
 public:
  virtual ~Bus() = default;

  // Starts delivering to `handlers`. Called once, before any other method.
  virtual absl::Status Start(BusHandlers handlers) = 0;
  // Publishes to every replica with interest in the notice's key (this one
  // included). UNAVAILABLE when the notice could not be handed to the bus.
  virtual absl::Status Publish(const v1::Notice& notice) = 0;
  // `entity` plus `id`, where id "*" is the whole entity.
  virtual void AddInterest(const std::string& entity,
                           const std::string& id) = 0;
  virtual void RemoveInterest(const std::string& entity,
                              const std::string& id) = 0;
  virtual BusState state() const = 0;
  // Stops delivery; no handler runs after Stop returns.
  virtual void Stop() = 0;
};

}  // namespace entitysync

#endif  // ENTITYSYNC_ADAPTERS_BUS_BUS_H_
