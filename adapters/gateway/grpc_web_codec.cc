#include "adapters/gateway/grpc_web_codec.h"

#include <cstdint>

#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"

namespace entitysync {
namespace gateway {
namespace {

constexpr char kDataFlag = 0x00;
constexpr char kTrailersFlag = static_cast<char>(0x80);
constexpr size_t kHeaderBytes = 5;

std::string Frame(char flag, absl::string_view payload) {
  std::string out;
  out.reserve(kHeaderBytes + payload.size());
  out.push_back(flag);
  const uint32_t size = static_cast<uint32_t>(payload.size());
  out.push_back(static_cast<char>((size >> 24) & 0xff));
  out.push_back(static_cast<char>((size >> 16) & 0xff));
  out.push_back(static_cast<char>((size >> 8) & 0xff));
  out.push_back(static_cast<char>(size & 0xff));
  out.append(payload.data(), payload.size());
  return out;
}

std::string Finish(std::string frame, GrpcWebFormat format) {
  if (format == GrpcWebFormat::kBinary) return frame;
  return absl::Base64Escape(frame);
}

}  // namespace

absl::StatusOr<GrpcWebFormat> GrpcWebFormatFor(absl::string_view content_type) {
  // Parameters such as "; charset=utf-8" do not matter.
  absl::string_view type = absl::StripAsciiWhitespace(
      content_type.substr(0, content_type.find(';')));
  if (absl::EqualsIgnoreCase(type, "application/grpc-web") ||
      absl::EqualsIgnoreCase(type, "application/grpc-web+proto")) {
    return GrpcWebFormat::kBinary;
  }
  if (absl::EqualsIgnoreCase(type, "application/grpc-web-text") ||
      absl::EqualsIgnoreCase(type, "application/grpc-web-text+proto")) {
    return GrpcWebFormat::kText;
  }
  return absl::InvalidArgumentError(absl::StrCat(
      "content-type \"", content_type,
      "\" is not application/grpc-web(+proto) or application/grpc-web-text"));
}

absl::string_view GrpcWebContentType(GrpcWebFormat format) {
  return format == GrpcWebFormat::kBinary ? "application/grpc-web+proto"
                                          : "application/grpc-web-text+proto";
}

absl::StatusOr<std::string> DecodeGrpcWebRequest(absl::string_view body,
                                                 GrpcWebFormat format) {
  std::string decoded;
  if (format == GrpcWebFormat::kText) {
    std::string compact;
    compact.reserve(body.size());
    for (char c : body) {
      if (!absl::ascii_isspace(static_cast<unsigned char>(c))) {
        compact.push_back(c);
      }
    }
    if (!absl::Base64Unescape(compact, &decoded)) {
      return absl::InvalidArgumentError("the request body is not base64");
    }
    body = decoded;
  }
  if (body.size() < kHeaderBytes) {
    return absl::InvalidArgumentError(
        "the request body is shorter than a grpc-web frame header");
  }
  const auto byte = [&](size_t i) {
    return static_cast<uint32_t>(static_cast<unsigned char>(body[i]));
  };
  if (byte(0) != 0) {
    return absl::InvalidArgumentError(
        absl::StrFormat("the request frame has flags 0x%02x; only an "
                        "uncompressed data frame (0x00) is accepted",
                        byte(0)));
  }
  const uint32_t size = byte(1) << 24 | byte(2) << 16 | byte(3) << 8 | byte(4);
  if (size != body.size() - kHeaderBytes) {
    return absl::InvalidArgumentError(absl::StrCat(
        "the request frame says ", size, " bytes but the body holds ",
        body.size() - kHeaderBytes, "; exactly one message is expected"));
  }
  return std::string(body.substr(kHeaderBytes));
}

std::string EncodeGrpcWebMessage(absl::string_view message,
                                 GrpcWebFormat format) {
  return Finish(Frame(kDataFlag, message), format);
}

std::string EncodeGrpcWebTrailers(const grpc::Status& status,
                                  GrpcWebFormat format) {
  std::string trailers = absl::StrCat(
      "grpc-status:", static_cast<int>(status.error_code()), "\r\n");
  if (!status.error_message().empty()) {
    absl::StrAppend(&trailers, "grpc-message:",
                    PercentEncodeGrpcMessage(status.error_message()), "\r\n");
  }
  return Finish(Frame(kTrailersFlag, trailers), format);
}

std::string PercentEncodeGrpcMessage(absl::string_view message) {
  std::string out;
  for (unsigned char c : message) {
    if (c >= 0x20 && c <= 0x7e && c != '%') {
      out.push_back(static_cast<char>(c));
    } else {
      absl::StrAppendFormat(&out, "%%%02X", c);
    }
  }
  return out;
}

}  // namespace gateway
}  // namespace entitysync
