#include "server/outbound_message.h"

#include <utility>

#include "grpcpp/support/slice.h"

namespace entitysync {

OutboundMessage EncodeOutbound(const v1::SubscribeResponse& response,
                               OutboundMessage::Kind kind,
                               std::string key_string, uint64_t version) {
  const size_t size = response.ByteSizeLong();
  grpc::Slice slice(size);
  response.SerializeWithCachedSizesToArray(const_cast<uint8_t*>(slice.begin()));
  OutboundMessage msg;
  msg.kind = kind;
  msg.key_string = std::move(key_string);
  msg.version = version;
  msg.bytes = grpc::ByteBuffer(&slice, 1);
  msg.size = size;
  return msg;
}

}  // namespace entitysync
