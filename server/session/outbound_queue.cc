#include "server/session/outbound_queue.h"

#include <utility>

namespace entitysync {

OutboundQueue::PushResult OutboundQueue::PushIndexed(Index& index,
                                                     OutboundMessage msg) {
  auto it = index.find(msg.key_string);
  if (it != index.end()) {
    // Keep the position (fairness between keys), replace the content.
    bytes_ = bytes_ - it->second->size + msg.size;
    *it->second = std::move(msg);
    ++conflated_;
    return PushResult::kConflated;
  }
  bytes_ += msg.size;
  std::string key = msg.key_string;
  items_.push_back(std::move(msg));
  index.emplace(std::move(key), std::prev(items_.end()));
  return PushResult::kQueued;
}

OutboundQueue::PushResult OutboundQueue::Push(OutboundMessage msg) {
  PushResult result = PushResult::kQueued;
  switch (msg.kind) {
    case OutboundMessage::Kind::kControl:
    case OutboundMessage::Kind::kRevoked:
      bytes_ += msg.size;
      items_.push_back(std::move(msg));
      break;
    case OutboundMessage::Kind::kUpdate:
      // Full state supersedes a pending `stale` for the key.
      if (auto s = stales_.find(msg.key_string); s != stales_.end()) {
        EraseIndexed(s->second);
        stales_.erase(s);
      }
      result = PushIndexed(updates_, std::move(msg));
      break;
    case OutboundMessage::Kind::kStale:
      result = PushIndexed(stales_, std::move(msg));
      break;
  }
  return bytes_ > max_bytes_ ? PushResult::kOverflow : result;
}

std::optional<OutboundMessage> OutboundQueue::Pop() {
  if (items_.empty()) return std::nullopt;
  auto it = items_.begin();
  if (it->kind == OutboundMessage::Kind::kUpdate)
    updates_.erase(it->key_string);
  if (it->kind == OutboundMessage::Kind::kStale) stales_.erase(it->key_string);
  bytes_ -= it->size;
  OutboundMessage msg = std::move(*it);
  items_.erase(it);
  // A burst (say, the snapshots of many subscribes at once) grows the
  // indexes, and a hash map never shrinks: give the memory back once the
  // queue is empty, so that an idle session costs what its subscriptions do.
  if (items_.empty() && updates_.capacity() + stales_.capacity() > 32) {
    Index().swap(updates_);
    Index().swap(stales_);
  }
  return msg;
}

OutboundBatch OutboundQueue::PopBatch(size_t max_bytes) {
  OutboundBatch batch;
  size_t bytes = 0;
  while (!items_.empty() && batch.size() < kMaxBatchMessages &&
         (batch.empty() || bytes + items_.front().size <= max_bytes)) {
    bytes += items_.front().size;
    batch.push_back(*Pop());
  }
  return batch;
}

void OutboundQueue::EraseIndexed(List::iterator it) {
  bytes_ -= it->size;
  items_.erase(it);
}

void OutboundQueue::DropKeys(
    const std::function<bool(absl::string_view key_string)>& match) {
  for (auto* index : {&updates_, &stales_}) {
    for (auto it = index->begin(); it != index->end();) {
      if (match(it->first)) {
        EraseIndexed(it->second);
        index->erase(it++);
      } else {
        ++it;
      }
    }
  }
}

void OutboundQueue::Clear() {
  items_.clear();
  updates_.clear();
  stales_.clear();
  bytes_ = 0;
}

}  // namespace entitysync
