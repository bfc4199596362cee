#include "adapters/gateway/static_files.h"

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>

#include "gtest/gtest.h"

namespace entitysync {
namespace gateway {
namespace {

class StaticFilesTest : public testing::Test {
 protected:
  void SetUp() override {
    root_ = std::filesystem::path(std::getenv("TEST_TMPDIR")) / "static";
    std::filesystem::create_directories(root_ / "site" / "sub");
    std::filesystem::create_directories(root_ / "lib");
    Write(root_ / "site" / "index.html", "<h1>home</h1>");
    Write(root_ / "site" / "app.js", "console.log(1)");
    Write(root_ / "lib" / "entitysync.js", "export {}");
    Write(root_ / "secret.txt", "do not serve");
  }

  static void Write(const std::filesystem::path& path, const std::string& s) {
    std::ofstream(path) << s;
  }

  StaticFiles Files() {
    absl::StatusOr<std::vector<StaticMount>> mounts = ParseStaticMounts(
        "/=" + (root_ / "site").string() + ",/lib=" + (root_ / "lib").string());
    EXPECT_TRUE(mounts.ok()) << mounts.status();
    return StaticFiles(*mounts);
  }

  std::filesystem::path root_;
};

TEST_F(StaticFilesTest, ServesMountedFilesWithTheirTypes) {
  StaticFiles files = Files();
  absl::StatusOr<StaticFile> index = files.Get("/?x=1");
  ASSERT_TRUE(index.ok()) << index.status();
  EXPECT_EQ(index->body, "<h1>home</h1>");
  EXPECT_EQ(index->content_type, "text/html; charset=utf-8");
  absl::StatusOr<StaticFile> lib = files.Get("/lib/entitysync.js");
  ASSERT_TRUE(lib.ok());
  EXPECT_EQ(lib->body, "export {}");
  EXPECT_EQ(lib->content_type, "text/javascript; charset=utf-8");
}

TEST_F(StaticFilesTest, NothingOutsideTheMountsIsReadable) {
  StaticFiles files = Files();
  for (const char* target :
       {"/../secret.txt", "/lib/../../secret.txt", "/%2e%2e/secret.txt",
        "/lib/..%2fsecret.txt", "//etc/passwd", "/sub\\..\\x"}) {
    EXPECT_TRUE(absl::IsInvalidArgument(files.Get(target).status())) << target;
  }
  EXPECT_TRUE(absl::IsNotFound(files.Get("/missing.js").status()));
  // A directory is not a file.
  EXPECT_TRUE(absl::IsNotFound(files.Get("/sub").status()));
}

TEST(ParseStaticMountsTest, RejectsMalformedSpecs) {
  EXPECT_TRUE(ParseStaticMounts("").ok());
  EXPECT_FALSE(ParseStaticMounts("examples/web").ok());
  EXPECT_FALSE(ParseStaticMounts("lib=/x").ok());
  EXPECT_FALSE(ParseStaticMounts("/=").ok());
}

}  // namespace
}  // namespace gateway
}  // namespace entitysync
