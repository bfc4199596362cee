// InProcessBus: the default Bus for a single replica. Publish delivers to
// this process's handler at once, on the publishing thread, and only for keys
// with interest, exactly as a NATS bus would route them. Always connected.
// Thread-safe.
#ifndef ENTITYSYNC_ADAPTERS_BUS_IN_PROCESS_BUS_H_
#define ENTITYSYNC_ADAPTERS_BUS_IN_PROCESS_BUS_H_

#include <string>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/synchronization/mutex.h"
#include "adapters/bus/bus.h"

namespace entitysync {

class InProcessBus : public Bus {
 public:
  absl::Status Start(BusHandlers handlers) override;
  absl::Status Publish(const v1::Notice& notice) override;
  void AddInterest(const std::string& entity, const std::string& id) override;
  void RemoveInterest(const std::string& entity,
                      const std::string& id) override;
  BusState state() const override { return BusState::kConnected; }
  void Stop() override;

 private:
  static std::string InterestKey(const std::string& entity,
                                 const std::string& id);

  // Guards handlers against Stop; held (shared) while a handler runs.
  mutable absl::Mutex handlers_mu_;
  BusHandlers handlers_ ABSL_GUARDED_BY(handlers_mu_);
  bool running_ ABSL_GUARDED_BY(handlers_mu_) = false;

  mutable absl::Mutex interest_mu_;
  // Interest refcounts: the hub adds once per key, but two hubs (tests) or a
  // re-add must not lose interest.
  absl::flat_hash_map<std::string, int> interest_ ABSL_GUARDED_BY(interest_mu_);
};

}  // namespace entitysync

#endif  // ENTITYSYNC_ADAPTERS_BUS_IN_PROCESS_BUS_H_
