// The WebSocket JSON protocols of the gateway (adapters/gateway/PROTOCOL.md):
// turning a browser's text frame into a SubscribeRequest, and a
// SubscribeResponse into the frames a browser receives, in the legacy
// (entity-sync) and the enveloped mode. The binary mode needs no codec: its
// frames are the serialized protobuf messages.
//
// Pure functions of their input, thread-safe. Untrusted input never crashes
// them: a frame that cannot be understood is an INVALID_ARGUMENT status with
// a message that says what is wrong.
#ifndef ENTITYSYNC_ADAPTERS_GATEWAY_WS_CODEC_H_
#define ENTITYSYNC_ADAPTERS_GATEWAY_WS_CODEC_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "entitysync/v1/entitysync.pb.h"

namespace entitysync {
namespace gateway {

enum class WsMode {
  kLegacy,     // entity-sync's protocol: rows as frames
  kEnveloped,  // subprotocol entitysync.v1.json
  kBinary,     // subprotocol entitysync.v1.proto
};

inline constexpr absl::string_view kEnvelopedSubprotocol = "entitysync.v1.json";
inline constexpr absl::string_view kBinarySubprotocol = "entitysync.v1.proto";
inline constexpr absl::string_view kLegacySubprotocol = "entity-sync";

// The mode for a Sec-WebSocket-Protocol header value (a comma-separated
// list, possibly empty): the first known subprotocol wins; none known means
// legacy. `chosen` receives the subprotocol to echo (empty for none).
WsMode ChooseMode(absl::string_view offered, std::string* chosen);

struct WsFrame {
  std::string data;
  bool binary = false;
};

// Parses a text frame of the legacy or enveloped mode. subscribe,
// unsubscribe and secret become those requests; any other JSON object (other
// action, or none) becomes a passthrough carrying the frame as it is. In the
// enveloped mode "request_id" is taken from the frame; in the legacy mode it
// is 0. `request_id`, when not null, receives the frame's request id as soon
// as it is known, so that an error about the rest of the frame can echo it.
absl::StatusOr<v1::SubscribeRequest> ParseClientText(
    absl::string_view text, WsMode mode, uint64_t* request_id = nullptr);

// The frames a response becomes. Legacy: each row of an update as its own
// frame (text when UTF-8, else binary), an error as an error object, a
// passthrough reply as its bytes, nothing for the rest. Enveloped: one JSON
// object. Neither mode gets a frame for goaway (the gateway acts on it).
std::vector<WsFrame> EncodeResponse(const v1::SubscribeResponse& response,
                                    WsMode mode);

// The error object both JSON modes use; `key` may be null.
std::string EncodeErrorJson(uint64_t request_id, const absl::Status& status,
                            const v1::EntityKey* key);

}  // namespace gateway
}  // namespace entitysync

#endif  // ENTITYSYNC_ADAPTERS_GATEWAY_WS_CODEC_H_
