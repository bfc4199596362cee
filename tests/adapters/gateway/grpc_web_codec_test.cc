#include "adapters/gateway/grpc_web_codec.h"

#include <string>

#include "absl/strings/escaping.h"
#include "gtest/gtest.h"

namespace entitysync {
namespace gateway {
namespace {

TEST(GrpcWebCodecTest, FormatFromContentType) {
  EXPECT_EQ(*GrpcWebFormatFor("application/grpc-web+proto"),
            GrpcWebFormat::kBinary);
  EXPECT_EQ(*GrpcWebFormatFor("application/grpc-web"), GrpcWebFormat::kBinary);
  EXPECT_EQ(*GrpcWebFormatFor("application/grpc-web-text; charset=utf-8"),
            GrpcWebFormat::kText);
  EXPECT_FALSE(GrpcWebFormatFor("application/json").ok());
  EXPECT_FALSE(GrpcWebFormatFor("").ok());
}

TEST(GrpcWebCodecTest, MessageRoundTripsInBothFormats) {
  const std::string message(
      "\x0a\x03"
      "abc",
      5);
  const std::string binary =
      EncodeGrpcWebMessage(message, GrpcWebFormat::kBinary);
  EXPECT_EQ(binary, std::string("\x00\x00\x00\x00\x05", 5) + message);
  EXPECT_EQ(*DecodeGrpcWebRequest(binary, GrpcWebFormat::kBinary), message);
  const std::string text = EncodeGrpcWebMessage(message, GrpcWebFormat::kText);
  EXPECT_EQ(text, absl::Base64Escape(binary));
  EXPECT_EQ(*DecodeGrpcWebRequest(text, GrpcWebFormat::kText), message);
}

TEST(GrpcWebCodecTest, MalformedBodiesAreRefused) {
  EXPECT_FALSE(DecodeGrpcWebRequest("", GrpcWebFormat::kBinary).ok());
  EXPECT_FALSE(DecodeGrpcWebRequest(std::string("\x00\x00\x00\x00\x09"
                                                "ab",
                                                7),
                                    GrpcWebFormat::kBinary)
                   .ok());
  // Compressed (flag 1) and trailer frames are not requests.
  EXPECT_FALSE(DecodeGrpcWebRequest(std::string("\x01\x00\x00\x00\x00", 5),
                                    GrpcWebFormat::kBinary)
                   .ok());
  EXPECT_FALSE(DecodeGrpcWebRequest("***", GrpcWebFormat::kText).ok());
}

TEST(GrpcWebCodecTest, TrailersCarryStatusAndPercentEncodedMessage) {
  const std::string trailers = EncodeGrpcWebTrailers(
      grpc::Status(grpc::StatusCode::UNAVAILABLE, "50% gone\n"),
      GrpcWebFormat::kBinary);
  const std::string body = "grpc-status:14\r\ngrpc-message:50%25 gone%0A\r\n";
  EXPECT_EQ(trailers.substr(0, 1), "\x80");
  EXPECT_EQ(static_cast<unsigned char>(trailers[4]), body.size());
  EXPECT_EQ(trailers.substr(5), body);
  EXPECT_EQ(
      EncodeGrpcWebTrailers(grpc::Status::OK, GrpcWebFormat::kBinary).substr(5),
      "grpc-status:0\r\n");
}

}  // namespace
}  // namespace gateway
}  // namespace entitysync
