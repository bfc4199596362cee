// LinkMessage: one SubscribeResponse as a gateway connection receives it from
// its SubscribeLink, with the forms a connection writes (the WebSocket frames
// of each protocol, the grpc-web frame) made once and shared by every
// connection the same message goes to (common/shared_forms.h). Inside a
// replica an update fanned out to 10,000 browsers reaches them as 10,000
// LinkMessages over one SharedForms: parsed once, encoded once per protocol
// in use. A message of one connection alone (an answer; every message of the
// standalone gateway's gRPC link) has forms of its own.
//
// Thread-safe to share; a LinkMessage itself is a pair of pointers.
#ifndef ENTITYSYNC_ADAPTERS_GATEWAY_LINK_MESSAGE_H_
#define ENTITYSYNC_ADAPTERS_GATEWAY_LINK_MESSAGE_H_

#include <cstddef>
#include <memory>
#include <string>
#include <vector>

#include "absl/container/inlined_vector.h"
#include "adapters/gateway/grpc_web_codec.h"
#include "adapters/gateway/ws_codec.h"
#include "common/shared_forms.h"
#include "entitysync/v1/entitysync.pb.h"

namespace entitysync {
namespace gateway {

// The parsed message, in slot LinkMessage::kParsed.
struct ParsedResponse final : SharedForms::Form {
  v1::SubscribeResponse response;
};

class LinkMessage {
 public:
  // The slots of the forms.
  enum Slot : size_t {
    kParsed = 0,
    kLegacyFrames,
    kEnvelopedFrames,
    kBinaryFrames,
    kGrpcWebBinary,
    kGrpcWebText,
  };
  static_assert(kGrpcWebText < SharedForms::kSlots);

  // A message of one connection alone.
  explicit LinkMessage(v1::SubscribeResponse response);
  // A message whose `forms` hold its ParsedResponse already.
  explicit LinkMessage(std::shared_ptr<SharedForms> forms);

  const v1::SubscribeResponse& response() const { return *response_; }

  // Appends the frames of `mode` (made once for everyone sharing the
  // message) to `out`. Each frame is shared: its pointer keeps the forms
  // alive, nothing is copied.
  void AppendFrames(WsMode mode,
                    std::vector<std::shared_ptr<const WsFrame>>* out) const;
  // The grpc-web data frame of the message in `format`, shared alike.
  std::shared_ptr<const std::string> GrpcWebFrame(GrpcWebFormat format) const;

 private:
  std::shared_ptr<SharedForms> forms_;
  const v1::SubscribeResponse* response_;
};

// What one event of a link carries: the messages of one write of the
// stream, in order (usually one).
using LinkMessages = absl::InlinedVector<LinkMessage, 1>;

}  // namespace gateway
}  // namespace entitysync

#endif  // ENTITYSYNC_ADAPTERS_GATEWAY_LINK_MESSAGE_H_
