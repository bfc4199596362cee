// Client requests from raw bytes: a SubscribeRequest as the wire carries it,
// validated as the replica does. A key that passes validation survives the
// replica's key-string round trip unchanged.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>

#include "entitysync/v1/entitysync.pb.h"
#include "server/core/entity_key.h"
#include "server/core/limits.h"

namespace {

void Check(const entitysync::v1::EntityKey& key) {
  static const entitysync::Limits limits;
  for (const auto use :
       {entitysync::KeyUse::kSubscribe, entitysync::KeyUse::kNotify}) {
    if (!entitysync::ValidateKey(key, limits, use).ok()) continue;
    const std::string ks = entitysync::KeyString(key);
    const entitysync::v1::EntityKey back = entitysync::KeyOfKeyString(ks);
    if (back.entity() != key.entity() || back.id() != key.id()) std::abort();
    if (entitysync::EntityOfKeyString(ks) != key.entity()) std::abort();
    (void)entitysync::DescribeKey(key);
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  entitysync::v1::SubscribeRequest request;
  if (request.ParseFromArray(data, static_cast<int>(size))) {
    if (request.has_subscribe()) Check(request.subscribe().key());
    if (request.has_unsubscribe()) Check(request.unsubscribe().key());
  }
  // The same bytes as a key: entity up to the first NUL, id after it.
  const std::string text(reinterpret_cast<const char*>(data), size);
  const size_t split = text.find('\0');
  entitysync::v1::EntityKey key;
  key.set_entity(text.substr(0, split));
  if (split != std::string::npos) key.set_id(text.substr(split + 1));
  Check(key);
  return 0;
}
