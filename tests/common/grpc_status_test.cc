#include "common/grpc_status.h"

#include "gtest/gtest.h"

namespace entitysync {
namespace {

TEST(GrpcStatusTest, KeepsCodeAndMessage) {
  EXPECT_TRUE(FromGrpcStatus(grpc::Status::OK).ok());
  const absl::Status status = FromGrpcStatus(
      grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, "changes[2]: bad id"));
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(status.message(), "changes[2]: bad id");
}

TEST(GrpcStatusTest, RpcCodesOutOfRangeAreUnknown) {
  EXPECT_EQ(StatusFromRpcCode(7, "no").code(),
            absl::StatusCode::kPermissionDenied);
  EXPECT_EQ(StatusFromRpcCode(14, "").code(), absl::StatusCode::kUnavailable);
  EXPECT_EQ(StatusFromRpcCode(99, "x").code(), absl::StatusCode::kUnknown);
  EXPECT_EQ(StatusFromRpcCode(-1, "x").code(), absl::StatusCode::kUnknown);
  EXPECT_EQ(StatusFromRpcCode(0, "claims success").code(),
            absl::StatusCode::kUnknown);
  EXPECT_TRUE(StatusFromRpcCode(0, "").ok());
}

}  // namespace
}  // namespace entitysync
