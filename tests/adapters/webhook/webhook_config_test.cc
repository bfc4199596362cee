#include "adapters/webhook/webhook_config.h"

#include <cstdlib>
#include <string>

#include "absl/strings/match.h"
#include "adapters/webhook/envelope.h"
#include "adapters/webhook/http_url.h"
#include "gtest/gtest.h"

namespace entitysync::webhook {
namespace {

TEST(HttpUrlTest, ParsesHostPortAndTarget) {
  absl::StatusOr<HttpUrl> url = ParseHttpUrl("http://hooks.local:8081/a/b?x=1");
  ASSERT_TRUE(url.ok()) << url.status();
  EXPECT_EQ(url->host, "hooks.local");
  EXPECT_EQ(url->port, "8081");
  EXPECT_EQ(url->target, "/a/b?x=1");
  EXPECT_EQ(url->host_header, "hooks.local:8081");
  url = ParseHttpUrl("http://[::1]");
  ASSERT_TRUE(url.ok()) << url.status();
  EXPECT_EQ(url->host, "::1");
  EXPECT_EQ(url->port, "80");
  EXPECT_EQ(url->target, "/");
}

TEST(HttpUrlTest, RejectsWithReasons) {
  EXPECT_TRUE(absl::StrContains(ParseHttpUrl("https://x/").status().message(),
                                "https:// is not supported"));
  EXPECT_TRUE(absl::StrContains(ParseHttpUrl("ftp://x/").status().message(),
                                "must start with http://"));
  EXPECT_TRUE(absl::StrContains(
      ParseHttpUrl("http://u:p@x/").status().message(), "user:password@"));
  EXPECT_TRUE(absl::StrContains(
      ParseHttpUrl("http://x:99999/").status().message(), "port"));
  EXPECT_TRUE(absl::StrContains(ParseHttpUrl("http:///a").status().message(),
                                "empty host"));
}

TEST(WebhookConfigTest, AppliesDefaultsAndResolvesEnvironment) {
  setenv("WEBHOOK_CONFIG_TEST_TOKEN", "Bearer abc", 1);
  absl::StatusOr<std::vector<EndpointSpec>> specs = ParseWebhookConfig(
      R"(endpoints {
           name: "a" url: "http://127.0.0.1:9/h"
           keys { entity: "items" id: "*" }
           headers { name: "Authorization"
                     value_from_env: "WEBHOOK_CONFIG_TEST_TOKEN" }
           headers { name: "X-Env" value: "prod" }
           credentials_from_env: "WEBHOOK_CONFIG_TEST_TOKEN"
         })",
      "t.textproto");
  ASSERT_TRUE(specs.ok()) << specs.status();
  ASSERT_EQ(specs->size(), 1u);
  const EndpointSpec& spec = (*specs)[0];
  EXPECT_EQ(spec.headers[0].second, "Bearer abc");
  EXPECT_EQ(spec.headers[1].second, "prod");
  EXPECT_EQ(spec.credentials, "Bearer abc");
  EXPECT_EQ(spec.request_timeout, kDefaultRequestTimeout);
  EXPECT_EQ(spec.retry.max_attempts, kDefaultMaxAttempts);
  EXPECT_EQ(spec.Classify(200), ResponseClass::kSuccess);
  EXPECT_EQ(spec.Classify(204), ResponseClass::kSuccess);
  for (int code : {400, 404, 410, 422}) {
    EXPECT_EQ(spec.Classify(code), ResponseClass::kDiscard) << code;
  }
  for (int code : {301, 401, 408, 429, 500, 503}) {
    EXPECT_EQ(spec.Classify(code), ResponseClass::kRetry) << code;
  }
}

TEST(WebhookConfigTest, ErrorsNameTheFieldButNeverTheValue) {
  setenv("WEBHOOK_CONFIG_TEST_BAD", "line\nbreak-secret", 1);
  // The replicas' credential limit is 4096 bytes.
  setenv("WEBHOOK_CONFIG_TEST_HUGE", std::string(5000, 'a').c_str(), 1);
  const std::string keys = R"(keys { entity: "items" id: "1" })";
  struct Case {
    std::string text;
    std::string error;
  };
  for (const Case& c : std::vector<Case>{
           {"endpoints { name: \"a\" url: \"http://x\" " + keys +
                " headers { name: \"X\" value_from_env: "
                "\"WEBHOOK_CONFIG_TEST_BAD\" } }",
            "t: endpoints[0] \"a\": headers[0] \"X\": the value contains CR"},
           {"endpoints { name: \"a\" url: \"http://x\" " + keys +
                " headers { name: \"Content-Type\" value: \"x\" } }",
            "sets this header itself"},
           {"endpoints { name: \"a\" url: \"http://x\" " + keys +
                " } endpoints { name: \"a\" url: \"http://y\" " + keys + " }",
            "endpoints[1] \"a\": duplicate name"},
           {"endpoints { name: \"a\" url: \"http://x\" " + keys +
                " discard_codes: 700 }",
            "discard_codes: 700 is not an HTTP status"},
           {"endpoints { name: \"a\" url: \"http://x\" " + keys +
                " retry { initial_backoff_ms: 5000 max_backoff_ms: 100 } }",
            "initial_backoff_ms 5000 is above max_backoff_ms 100"},
           {"endpoints { name: \"a\" url: \"http://x\" " + keys + " " + keys +
                " }",
            "keys[1]: duplicate key items/1"},
           {"endpoints { name: \"a b\" url: \"http://x\" " + keys + " }",
            "name may hold only"},
           {"endpoints { name: \"a\" url: \"http://x\" " + keys +
                " credentials_from_env: \"WEBHOOK_CONFIG_TEST_NONE\" }",
            "credentials_from_env: environment variable "
            "WEBHOOK_CONFIG_TEST_NONE is not set"},
           {"endpoints { name: \"a\" url: \"http://x\" " + keys +
                " credentials_from_env: \"WEBHOOK_CONFIG_TEST_BAD\" }",
            "WEBHOOK_CONFIG_TEST_BAD holds a byte outside printable ASCII"},
           {"endpoints { name: \"a\" url: \"http://x\" " + keys +
                " credentials_from_env: \"WEBHOOK_CONFIG_TEST_HUGE\" }",
            "credentials_from_env: $WEBHOOK_CONFIG_TEST_HUGE is 5000 bytes; "
            "the limit is 4096"},
       }) {
    absl::StatusOr<std::vector<EndpointSpec>> specs =
        ParseWebhookConfig(c.text, "t");
    ASSERT_FALSE(specs.ok()) << c.text;
    EXPECT_TRUE(absl::IsInvalidArgument(specs.status()));
    EXPECT_TRUE(absl::StrContains(specs.status().message(), c.error))
        << specs.status();
    EXPECT_FALSE(absl::StrContains(specs.status().message(), "secret"));
  }
}

TEST(EnvelopeTest, BodyAndHeaders) {
  v1::Update update;
  update.mutable_key()->set_entity("items");
  update.mutable_key()->set_id("a b/%");
  update.set_version(9);
  v1::Row* row = update.add_rows();
  row->set_content_type("application/json");
  row->set_data(R"({"n":1})");
  row = update.add_rows();
  row->set_content_type("application/octet-stream");
  row->set_data(std::string("\xff\x00", 2));
  Envelope envelope = BuildEnvelope(update, 2);
  EXPECT_EQ(envelope.body,
            R"({"type":"update","key":{"entity":"items","id":"a b/%"},)"
            R"("version":9,"removed":false,"rows":[)"
            R"({"content_type":"application/json","json":{"n":1}},)"
            R"({"content_type":"application/octet-stream","base64":"/wA="}]})");
  auto header = [&](const std::string& name) {
    for (const auto& [key, value] : envelope.headers) {
      if (key == name) return value;
    }
    return std::string();
  };
  EXPECT_EQ(header("Content-Type"), "application/json");
  EXPECT_EQ(header("X-Entitysync-Key"), "items/a%20b/%25");
  EXPECT_EQ(header("X-Entitysync-Version"), "9");
  EXPECT_EQ(header("X-Entitysync-Attempt"), "2");
}

}  // namespace
}  // namespace entitysync::webhook
