// One message on its way to a client: the serialized SubscribeResponse plus
// what a session needs to order and conflate it without parsing it again.
//
// `bytes` is a grpc::ByteBuffer whose slices are reference-counted, so one
// update serialized once is shared by every session it goes to; copying an
// OutboundMessage copies no payload. `forms` is shared alike: what other
// transports write instead of `bytes` (a browser's frames) is made once for
// every session the message goes to.
#ifndef ENTITYSYNC_SERVER_SESSION_OUTBOUND_MESSAGE_H_
#define ENTITYSYNC_SERVER_SESSION_OUTBOUND_MESSAGE_H_

#include <cstdint>
#include <memory>
#include <string>

#include "absl/container/inlined_vector.h"
#include "common/shared_forms.h"
#include "entitysync/v1/entitysync.pb.h"
#include "grpcpp/support/byte_buffer.h"

namespace entitysync {

struct OutboundMessage {
  enum class Kind {
    // Answers (subscribed, error, ...): never conflated or dropped.
    kControl,
    // Full state of key_string; a newer one replaces a pending older one.
    kUpdate,
    // The key could not be resolved; replaced by a later update.
    kStale,
    // Access to key_string was revoked: the session drops the subscription
    // and writes the message (an error). Never conflated.
    kRevoked,
  };

  Kind kind = Kind::kControl;
  // KeyString() of the key, for kUpdate and kStale.
  std::string key_string;
  uint64_t version = 0;
  // An update at the version the subscriber already has that it must still
  // take (recovery after `stale`, or rows changed without a new version).
  bool refresh = false;
  grpc::ByteBuffer bytes;
  size_t size = 0;
  // Never null for a message EncodeOutbound made.
  std::shared_ptr<SharedForms> forms;
};

// What one write to a stream carries: usually one message, several when
// more were waiting and the transport takes them together.
using OutboundBatch = absl::InlinedVector<OutboundMessage, 1>;

// Serializes `response` once into a ByteBuffer of exactly its size.
OutboundMessage EncodeOutbound(const v1::SubscribeResponse& response,
                               OutboundMessage::Kind kind,
                               std::string key_string = {},
                               uint64_t version = 0);

// The SubscribeResponse{batch} holding `messages` in order, built from
// their bytes without parsing or copying them: only the few bytes of field
// headers are new; the payload slices are shared.
grpc::ByteBuffer EncodeBatch(const OutboundBatch& messages);

}  // namespace entitysync

#endif  // ENTITYSYNC_SERVER_SESSION_OUTBOUND_MESSAGE_H_
