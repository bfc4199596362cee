#include "server/core/config.h"

#include "gtest/gtest.h"

namespace entitysync {
namespace {

TEST(ConfigTest, ParsesTableAndAppliesDefaults) {
  auto config = ParseServerConfig(R"pb(
    entities {
      name: "items"
      resolver { target: "127.0.0.1:7072" }
    }
    entities {
      name: "feeds"
      resolver { target: "dns:///feeds:7072" timeout_ms: 500 }
      per_credentials: true
      max_batch_keys: 7
    }
    passthrough { target: "127.0.0.1:7073" }
  )pb");
  ASSERT_TRUE(config.ok()) << config.status();
  ASSERT_EQ(config->entities_size(), 2);
  EXPECT_EQ(config->entities(0).resolver().timeout_ms(),
            kDefaultResolverTimeoutMs);
  EXPECT_EQ(config->entities(0).max_batch_keys(), kDefaultMaxBatchKeys);
  EXPECT_EQ(config->entities(0).max_concurrent_resolves(),
            kDefaultMaxConcurrentResolves);
  EXPECT_EQ(config->entities(1).resolver().timeout_ms(), 500u);
  EXPECT_TRUE(config->entities(1).per_credentials());
  EXPECT_EQ(config->entities(1).max_batch_keys(), 7u);
  EXPECT_EQ(config->passthrough().timeout_ms(), kDefaultResolverTimeoutMs);
}

TEST(ConfigTest, EmptyTextIsOpenMode) {
  auto config = ParseServerConfig("");
  ASSERT_TRUE(config.ok());
  EXPECT_EQ(config->entities_size(), 0);
}

TEST(ConfigTest, SyntaxErrorNamesLineAndColumn) {
  auto config =
      ParseServerConfig("entities {\n  name: \"items\"\n  bogus: 1\n}\n");
  ASSERT_FALSE(config.ok());
  EXPECT_EQ(config.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(config.status().message().find("line 3"), std::string::npos)
      << config.status();
  EXPECT_NE(config.status().message().find("bogus"), std::string::npos);
}

TEST(ConfigTest, SemanticErrorsNameTheEntry) {
  struct Case {
    const char* text;
    const char* expect;
  } cases[] = {
      {R"(entities { name: "a b" resolver { target: "x" } })", "invalid name"},
      {R"(entities { name: "" resolver { target: "x" } })", "invalid name"},
      {R"(entities { name: "a" resolver { target: "x" } }
          entities { name: "a" resolver { target: "y" } })",
       "duplicate"},
      {R"(entities { name: "a" })", "no resolver"},
      {R"(entities { name: "a" resolver { } })", "target is empty"},
      {R"(passthrough { timeout_ms: 5 })", "passthrough: target is empty"},
      {R"(entities { name: "a" resolver { target: "x" timeout_ms: 60001 } })",
       "over the limit of 60000"},
      {R"(entities {
            name: "a" resolver { target: "x" }
            per_credentials: true resolve_mode: CLUSTER_ONCE
          })",
       "CLUSTER_ONCE cannot be per_credentials"},
      {R"(entities {
            name: "a" resolver { target: "x" tls { cert_file: "c.pem" } }
          })",
       "tls needs both cert_file and key_file"},
  };
  for (const Case& c : cases) {
    auto config = ParseServerConfig(c.text);
    ASSERT_FALSE(config.ok()) << c.text;
    EXPECT_NE(config.status().message().find(c.expect), std::string::npos)
        << config.status() << " for " << c.text;
  }
}

TEST(ConfigTest, MissingFileIsNotFound) {
  auto config = LoadServerConfig("/nonexistent/entitysync.textproto");
  EXPECT_EQ(config.status().code(), absl::StatusCode::kNotFound);
}

}  // namespace
}  // namespace entitysync
