// The gateway's decoding of what browsers send: WebSocket text frames in
// each protocol mode (legacy entity-sync JSON, enveloped JSON, binary
// proto), and grpc-web request bodies in both formats. First byte picks
// the decoder; the rest is the input.
#include <cstddef>
#include <cstdint>
#include <string>

#include "adapters/gateway/grpc_web_codec.h"
#include "adapters/gateway/ws_codec.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  const std::string input(reinterpret_cast<const char*>(data) + 1, size - 1);
  namespace gw = entitysync::gateway;
  switch (data[0] % 5) {
    case 0:
    case 1:
    case 2: {
      uint64_t request_id = 0;
      (void)gw::ParseClientText(input, static_cast<gw::WsMode>(data[0] % 3),
                                &request_id);
      break;
    }
    case 3:
      (void)gw::DecodeGrpcWebRequest(input, gw::GrpcWebFormat::kBinary);
      break;
    case 4:
      (void)gw::DecodeGrpcWebRequest(input, gw::GrpcWebFormat::kText);
      break;
  }
  return 0;
}
