#include "client/cli_args.h"

#include <string>
#include <vector>

#include "gtest/gtest.h"

namespace entitysync {
namespace client {
namespace {

using Command = CliArgs::Command;

absl::StatusOr<CliArgs> Parse(std::vector<std::string> args) {
  return ParseCliArgs(args);
}

TEST(CliArgsTest, SubscribeWithDefaults) {
  absl::StatusOr<CliArgs> args = Parse({"subscribe", "items/100", "items/*"});
  ASSERT_TRUE(args.ok()) << args.status();
  EXPECT_EQ(args->command, Command::kSubscribe);
  EXPECT_EQ(args->targets, std::vector<std::string>{"127.0.0.1:7070"});
  ASSERT_EQ(args->keys.size(), 2u);
  EXPECT_EQ(args->keys[0], (EntityKey{"items", "100"}));
  EXPECT_TRUE(args->keys[1].is_wildcard());
  EXPECT_EQ(args->count, 0);
  EXPECT_FALSE(args->timeout.has_value());
}

TEST(CliArgsTest, SubscribeFlagsInBothSpellingsAndPositions) {
  absl::StatusOr<CliArgs> args =
      Parse({"--target", "a:1,b:2", "--credentials=s3cret", "subscribe",
             "--count=2", "files/dir/a.txt", "--timeout", "1.5"});
  ASSERT_TRUE(args.ok()) << args.status();
  EXPECT_EQ(args->targets, (std::vector<std::string>{"a:1", "b:2"}));
  EXPECT_EQ(args->credentials, "s3cret");
  EXPECT_EQ(args->count, 2);
  EXPECT_EQ(*args->timeout, absl::Milliseconds(1500));
  ASSERT_EQ(args->keys.size(), 1u);
  // Split at the first '/': the id keeps its slashes.
  EXPECT_EQ(args->keys[0], (EntityKey{"files", "dir/a.txt"}));
}

TEST(CliArgsTest, NotifyWithRowsAndDefaults) {
  absl::StatusOr<CliArgs> args =
      Parse({"notify", "items/100", "--version", "7", "--row={\"a\":1}",
             "--row", "second", "--local_only"});
  ASSERT_TRUE(args.ok()) << args.status();
  EXPECT_EQ(args->command, Command::kNotify);
  EXPECT_EQ(args->targets, std::vector<std::string>{"127.0.0.1:7071"});
  EXPECT_EQ(*args->version, 7u);
  EXPECT_EQ(args->rows, (std::vector<std::string>{"{\"a\":1}", "second"}));
  EXPECT_EQ(args->content_type, "application/json");
  EXPECT_TRUE(args->local_only);
  EXPECT_FALSE(args->removed);
  EXPECT_EQ(*args->timeout, absl::Seconds(5));
}

TEST(CliArgsTest, StatsWithDefaultsAndItsOwnFlag) {
  absl::StatusOr<CliArgs> args = Parse({"stats", "--top=5"});
  ASSERT_TRUE(args.ok()) << args.status();
  EXPECT_EQ(args->command, Command::kStats);
  EXPECT_EQ(args->top, 5);
  EXPECT_EQ(args->targets, std::vector<std::string>{"127.0.0.1:7071"});
  EXPECT_EQ(*args->timeout, absl::Seconds(5));
  EXPECT_FALSE(Parse({"stats", "items/1"}).ok()) << "stats takes no key";
  EXPECT_FALSE(Parse({"stats", "--top=0"}).ok());
  EXPECT_FALSE(Parse({"stats", "--count=3"}).ok());
  EXPECT_FALSE(Parse({"subscribe", "--top=3", "items/1"}).ok());
}

TEST(CliArgsTest, TlsFlags) {
  absl::StatusOr<CliArgs> plain = Parse({"stats"});
  ASSERT_TRUE(plain.ok());
  EXPECT_FALSE(plain->tls);
  absl::StatusOr<CliArgs> roots = Parse({"--tls", "stats"});
  ASSERT_TRUE(roots.ok()) << roots.status();
  EXPECT_TRUE(roots->tls);
  EXPECT_TRUE(roots->tls_ca_file.empty());
  absl::StatusOr<CliArgs> mutual =
      Parse({"notify", "items/1", "--tls_ca_file=ca.pem", "--tls_cert_file",
             "c.pem", "--tls_key_file=c.key"});
  ASSERT_TRUE(mutual.ok()) << mutual.status();
  EXPECT_TRUE(mutual->tls);
  EXPECT_EQ(mutual->tls_ca_file, "ca.pem");
  EXPECT_EQ(mutual->tls_cert_file, "c.pem");
  EXPECT_EQ(mutual->tls_key_file, "c.key");
  EXPECT_FALSE(Parse({"--tls=yes", "stats"}).ok());
  EXPECT_FALSE(Parse({"stats", "--tls_ca_file"}).ok());
}

TEST(CliArgsTest, HelpWins) {
  absl::StatusOr<CliArgs> args = Parse({"subscribe", "--help"});
  ASSERT_TRUE(args.ok());
  EXPECT_EQ(args->command, Command::kHelp);
  EXPECT_EQ(Parse({"-h"})->command, Command::kHelp);
}

TEST(CliArgsTest, UsageErrors) {
  const std::vector<std::vector<std::string>> bad = {
      {},
      {"publish", "items/1"},
      {"subscribe"},
      {"subscribe", "items"},
      {"subscribe", "/1"},
      {"subscribe", "items/"},
      {"subscribe", "items/1", "items/1"},
      {"subscribe", "items/1", "--count=0"},
      {"subscribe", "items/1", "--count=x"},
      {"subscribe", "items/1", "--timeout=-1"},
      {"subscribe", "items/1", "--row=x"},
      {"subscribe", "items/1", "--bogus"},
      {"subscribe", "items/1", "--count"},
      {"notify"},
      {"notify", "items/1", "items/2"},
      {"notify", "items/*"},
      {"notify", "items/1", "--removed", "--row=x"},
      {"notify", "items/1", "--count=1"},
      {"notify", "items/1", "--removed=yes"},
      {"notify", "items/1", "--version=-3"},
      {"--target=a:1,b:2", "notify", "items/1"},
  };
  for (const std::vector<std::string>& args : bad) {
    std::string joined;
    for (const std::string& arg : args) joined += arg + " ";
    EXPECT_EQ(ParseCliArgs(args).status().code(),
              absl::StatusCode::kInvalidArgument)
        << joined;
  }
}

TEST(CliArgsTest, DoubleDashEndsFlags) {
  absl::StatusOr<CliArgs> args = Parse({"subscribe", "--", "items/--x"});
  ASSERT_TRUE(args.ok()) << args.status();
  EXPECT_EQ(args->keys[0], (EntityKey{"items", "--x"}));
}

}  // namespace
}  // namespace client
}  // namespace entitysync
