// grpc-web framing
// (https://github.com/grpc/grpc/blob/master/doc/PROTOCOL-WEB.md): every message
// is a 5-byte header (flag byte, 32-bit big-endian length) followed by the
// message; the trailers are a frame with flag 0x80 holding "grpc-status:
// N\r\ngrpc-message: ...\r\n". In the -text variant the bytes are base64, each
// frame encoded on its own.
//
// Pure functions, thread-safe; malformed input is an INVALID_ARGUMENT status.
#ifndef ENTITYSYNC_ADAPTERS_GATEWAY_GRPC_WEB_CODEC_H_
#define ENTITYSYNC_ADAPTERS_GATEWAY_GRPC_WEB_CODEC_H_

#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "grpcpp/support/status.h"

namespace entitysync {
namespace gateway {

enum class GrpcWebFormat { kBinary, kText };

// The format for a request's content-type, or nullopt-like INVALID_ARGUMENT
// when it is not grpc-web.
absl::StatusOr<GrpcWebFormat> GrpcWebFormatFor(absl::string_view content_type);

// The response content-type of a format.
absl::string_view GrpcWebContentType(GrpcWebFormat format);

// The single message of a unary-request body (the body must hold exactly one
// data frame, uncompressed).
absl::StatusOr<std::string> DecodeGrpcWebRequest(absl::string_view body,
                                                 GrpcWebFormat format);

// One data frame carrying `message`.
std::string EncodeGrpcWebMessage(absl::string_view message,
                                 GrpcWebFormat format);

// The trailers frame for `status` (the message percent-encoded as gRPC
// does).
std::string EncodeGrpcWebTrailers(const grpc::Status& status,
                                  GrpcWebFormat format);

// grpc-message's percent-encoding: bytes outside printable ASCII and '%'.
std::string PercentEncodeGrpcMessage(absl::string_view message);

}  // namespace gateway
}  // namespace entitysync

#endif  // ENTITYSYNC_ADAPTERS_GATEWAY_GRPC_WEB_CODEC_H_
