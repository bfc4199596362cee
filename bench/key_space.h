// KeySpace: the ids the load generator subscribes to and notifies, numbered
// 0..size()-1 so that per-key state lives in flat arrays. Two layouts:
//  - numbered: ids "0".."M-1"; stream g's subscription j is id
//    (g*K + j) % M;
//  - personal_group: stream g subscribes to "u<g>" (index g) and
//    "g<g/G>" (index streams + g/G), the fan-out of a chat app where each
//    user has a private key and a group key.
// Immutable after construction, so thread-safe.
#ifndef ENTITYSYNC_BENCH_KEY_SPACE_H_
#define ENTITYSYNC_BENCH_KEY_SPACE_H_

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "absl/strings/string_view.h"

namespace entitysync {
namespace bench {

class KeySpace {
 public:
  static KeySpace Numbered(uint64_t size);
  // `streams` and `group_size` must be >= 1.
  static KeySpace PersonalGroup(uint64_t streams, uint64_t group_size);

  uint64_t size() const { return size_; }
  std::string Id(uint64_t index) const;
  // nullopt for ids outside the space (including non-canonical spellings
  // such as "01", which the server treats as a different id).
  std::optional<uint64_t> Index(absl::string_view id) const;
  // The key indices stream `stream` subscribes to, without duplicates (a
  // stream with more keys than the space has would otherwise subscribe to
  // one key twice).
  std::vector<uint64_t> KeysOfStream(uint64_t stream,
                                     uint64_t keys_per_stream) const;

 private:
  KeySpace(uint64_t size, uint64_t streams, uint64_t group_size)
      : size_(size), streams_(streams), group_size_(group_size) {}

  uint64_t size_;
  // personal_group only; 0 for numbered.
  uint64_t streams_;
  uint64_t group_size_;
};

}  // namespace bench
}  // namespace entitysync

#endif  // ENTITYSYNC_BENCH_KEY_SPACE_H_
