// A session's bounded queue of messages waiting to be written to its stream.
//
// Updates are full state, so a pending update for a key is replaced in place
// by a newer one (conflation) and a pending `stale` for the key is dropped
// when an update arrives. Control messages keep their order and are never
// dropped. When the bytes held pass the limit, Push reports kOverflow and the
// owner closes the stream (the client reconnects and resyncs), so memory per
// session stays bounded.
//
// Not thread-safe: the owning Session guards it with its own mutex.
#ifndef ENTITYSYNC_SERVER_SESSION_OUTBOUND_QUEUE_H_
#define ENTITYSYNC_SERVER_SESSION_OUTBOUND_QUEUE_H_

#include <cstdint>
#include <functional>
#include <list>
#include <optional>
#include <string>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/string_view.h"
#include "server/session/outbound_message.h"

namespace entitysync {

class OutboundQueue {
 public:
  enum class PushResult { kQueued, kConflated, kOverflow };

  explicit OutboundQueue(size_t max_bytes) : max_bytes_(max_bytes) {}

  // kOverflow leaves the message queued; the caller should close the stream.
  PushResult Push(OutboundMessage msg);
  std::optional<OutboundMessage> Pop();
  // Pops the first message and, behind it, as many as fit with it in
  // `max_bytes` (at most kMaxBatchMessages); empty when nothing waits. A
  // first message over `max_bytes` leaves alone.
  static constexpr size_t kMaxBatchMessages = 256;
  OutboundBatch PopBatch(size_t max_bytes);
  // Drops pending updates and stale signals whose key matches (used on
  // unsubscribe, so no rows arrive after it).
  void DropKeys(const std::function<bool(absl::string_view key_string)>& match);
  void Clear();

  bool empty() const { return items_.empty(); }
  size_t size() const { return items_.size(); }
  size_t bytes() const { return bytes_; }
  uint64_t conflated() const { return conflated_; }

 private:
  using List = std::list<OutboundMessage>;
  using Index = absl::flat_hash_map<std::string, List::iterator>;
  PushResult PushIndexed(Index& index, OutboundMessage msg);
  void EraseIndexed(List::iterator it);

  const size_t max_bytes_;
  List items_;
  // Pending updates and stale signals by key, pointing into items_.
  Index updates_;
  Index stales_;
  size_t bytes_ = 0;
  uint64_t conflated_ = 0;
};

}  // namespace entitysync

#endif  // ENTITYSYNC_SERVER_SESSION_OUTBOUND_QUEUE_H_
