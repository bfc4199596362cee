// InternalAuth: reading the token file and checking presented tokens.
#include "server/rpc/internal_auth.h"

#include <fstream>
#include <string>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"

namespace entitysync {
namespace {

std::string WriteFile(const std::string& name, const std::string& contents) {
  const char* dir = std::getenv("TEST_TMPDIR");
  const std::string path = absl::StrCat(dir ? dir : "/tmp", "/", name);
  std::ofstream(path, std::ios::binary) << contents;
  return path;
}

TEST(InternalAuthTest, NoPathMeansNoToken) {
  auto auth = InternalAuth::FromFile("");
  ASSERT_TRUE(auth.ok());
  EXPECT_FALSE(auth->enabled());
  EXPECT_TRUE(auth->Check("", false).ok());
}

TEST(InternalAuthTest, FileWithTrailingNewlineAsSecretMountsHave) {
  auto auth = InternalAuth::FromFile(WriteFile("token", "abc123\n"));
  ASSERT_TRUE(auth.ok()) << auth.status();
  EXPECT_TRUE(auth->enabled());
  EXPECT_TRUE(auth->Check("abc123", true).ok());
  EXPECT_TRUE(auth->Check("Bearer abc123", true).ok());
  EXPECT_FALSE(auth->Check("abc123\n", true).ok());
  EXPECT_FALSE(auth->Check("abc12", true).ok());
  EXPECT_FALSE(auth->Check("abc1234", true).ok());
  EXPECT_FALSE(auth->Check("", true).ok());
  EXPECT_TRUE(auth->Check("bearer abc123", true).ok());
  EXPECT_FALSE(auth->Check("Bearer abc12", true).ok());
  EXPECT_EQ(auth->Check("", false).error_code(),
            grpc::StatusCode::UNAUTHENTICATED);
}

TEST(InternalAuthTest, BadFilesAreRefusedWithoutShowingTheirContents) {
  auto missing = InternalAuth::FromFile("/nonexistent/token");
  ASSERT_FALSE(missing.ok());
  EXPECT_TRUE(absl::StrContains(missing.status().message(),
                                "cannot read /nonexistent/token"));

  auto empty = InternalAuth::FromFile(WriteFile("empty", " \n"));
  ASSERT_FALSE(empty.ok());
  EXPECT_TRUE(absl::StrContains(empty.status().message(), "is empty"));

  auto spaced = InternalAuth::FromFile(WriteFile("spaced", "two words"));
  ASSERT_FALSE(spaced.ok());
  EXPECT_FALSE(absl::StrContains(spaced.status().message(), "two words"));

  auto big = InternalAuth::FromFile(WriteFile("big", std::string(5000, 'a')));
  ASSERT_FALSE(big.ok());
  EXPECT_TRUE(absl::StrContains(big.status().message(), "not a token"));
}

}  // namespace
}  // namespace entitysync
