// The replica's own version sequence, for keys whose resolver and notice
// carry no version. Versions are max(last + 1, microseconds since the epoch),
// so they increase within a process and stay roughly comparable across
// restarts and replicas (a reconnecting client's known version is usually
// older than what a new replica hands out). Thread-safe.
#ifndef ENTITYSYNC_SERVER_CORE_VERSION_CLOCK_H_
#define ENTITYSYNC_SERVER_CORE_VERSION_CLOCK_H_

#include <atomic>
#include <cstdint>

namespace entitysync {

class VersionClock {
 public:
  uint64_t Next();

 private:
  std::atomic<uint64_t> last_{0};
};

}  // namespace entitysync

#endif  // ENTITYSYNC_SERVER_CORE_VERSION_CLOCK_H_
