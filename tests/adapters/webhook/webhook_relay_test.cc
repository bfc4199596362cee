// The webhook relay end to end: a real entitysync-server (open mode: Notify's
// inline rows are the updates), the real entitysync-webhook binary, and a
// real HTTP endpoint (HttpRecorder) that records requests and answers with
// programmable statuses.
#include <cstdlib>
#include <fstream>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "client/notifier.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "tests/adapters/webhook/http_recorder.h"
#include "tests/testing/subprocess.h"
#include "tests/testing/wait.h"

namespace entitysync::testing {
namespace {

using Json = nlohmann::json;

constexpr char kSecret[] = "s3cr3t-header-value-7f2a";
constexpr char kStreamSecret[] = "stream-credentials-9c41";

std::string TempPath(const std::string& name) {
  const char* dir = std::getenv("TEST_TMPDIR");
  static int counter = 0;
  return absl::StrCat(dir != nullptr ? dir : "/tmp", "/", name, "-", getpid(),
                      "-", ++counter);
}

std::string Binary(const std::string& path) {
  const char* srcdir = std::getenv("TEST_SRCDIR");
  return absl::StrCat(srcdir ? srcdir : "..", "/entitysync/", path);
}

uint64_t VersionOf(const RecordedRequest& request) {
  uint64_t version = 0;
  EXPECT_TRUE(
      absl::SimpleAtoi(request.header("x-entitysync-version"), &version))
      << request.header("x-entitysync-version");
  return version;
}

class WebhookRelayTest : public ::testing::Test {
 protected:
  void SetUp() override {
    setenv("WEBHOOK_TEST_SECRET", kSecret, 1);
    setenv("WEBHOOK_TEST_STREAM", kStreamSecret, 1);
    public_port_ = FreePort();
    internal_port_ = FreePort();
    server_ = std::make_unique<Subprocess>(
        std::vector<std::string>{
            Binary("server/entitysync-server"),
            absl::StrCat("--public_address=127.0.0.1:", public_port_),
            absl::StrCat("--internal_address=127.0.0.1:", internal_port_),
            "--metrics_address=127.0.0.1:0"},
        TempPath("server.log"));
    ASSERT_TRUE(WaitForPort(public_port_, absl::Seconds(20))) << server_->Log();
    ASSERT_TRUE(WaitForPort(internal_port_, absl::Seconds(20)))
        << server_->Log();
    client::NotifierOptions options;
    options.target = absl::StrCat("127.0.0.1:", internal_port_);
    notifier_ = std::make_unique<client::Notifier>(options);
  }

  void TearDown() override {
    if (relay_ != nullptr) {
      relay_->Terminate();
      EXPECT_EQ(relay_->Wait(absl::Seconds(20)), 0) << relay_->Log();
      const std::string log = relay_->Log();
      EXPECT_FALSE(absl::StrContains(log, kSecret)) << log;
      EXPECT_FALSE(absl::StrContains(log, kStreamSecret)) << log;
    }
  }

  // An endpoint block for the config; `extra` is added inside it.
  static std::string Endpoint(const std::string& name, int port,
                              const std::string& keys,
                              const std::string& extra = "") {
    return absl::StrCat("endpoints {\n  name: \"", name,
                        "\"\n  url: \"http://127.0.0.1:", port, "/hooks/", name,
                        "?source=entitysync\"\n", keys,
                        "  headers { name: \"Authorization\" value_from_env: "
                        "\"WEBHOOK_TEST_SECRET\" }\n"
                        "  headers { name: \"X-Team\" value: \"inventory\" }\n"
                        "  credentials_from_env: \"WEBHOOK_TEST_STREAM\"\n"
                        "  retry { initial_backoff_ms: 40 max_backoff_ms: 200 "
                        "max_attempts: 1000 }\n"
                        "  request_timeout_ms: 2000\n",
                        extra, "}\n");
  }

  // Starts the relay and waits until it has subscribed `keys_subscribed`
  // keys.
  void StartRelay(const std::string& config, int keys_subscribed) {
    const std::string path = TempPath("webhooks.textproto");
    std::ofstream(path) << config;
    relay_ = std::make_unique<Subprocess>(
        std::vector<std::string>{
            Binary("adapters/webhook/entitysync-webhook"),
            absl::StrCat("--config=", path),
            absl::StrCat("--target=127.0.0.1:", public_port_)},
        TempPath("relay.log"));
    ASSERT_TRUE(WaitFor(
        [&] {
          const std::string log = relay_->Log();
          size_t count = 0;
          for (size_t at = log.find(": subscribed "); at != std::string::npos;
               at = log.find(": subscribed ", at + 1)) {
            ++count;
          }
          return count >= static_cast<size_t>(keys_subscribed);
        },
        absl::Seconds(20)))
        << relay_->Log();
  }

  void Notify(const std::string& id, uint64_t version, const std::string& json,
              bool removed = false) {
    v1::Change change;
    change.mutable_key()->set_entity("items");
    change.mutable_key()->set_id(id);
    change.set_version(version);
    if (removed) {
      change.mutable_rows()->set_removed(true);
    } else {
      v1::Row* row = change.mutable_rows()->add_rows();
      row->set_content_type("application/json");
      row->set_data(json);
    }
    absl::StatusOr<uint32_t> accepted = notifier_->Notify({change});
    ASSERT_TRUE(accepted.ok()) << accepted.status();
  }

  std::vector<RecordedRequest> RequestsFor(const HttpRecorder& recorder,
                                           const std::string& key) {
    std::vector<RecordedRequest> out;
    for (const RecordedRequest& request : recorder.requests()) {
      if (request.header("x-entitysync-key") == key) out.push_back(request);
    }
    return out;
  }

  int public_port_ = 0;
  int internal_port_ = 0;
  std::unique_ptr<Subprocess> server_;
  std::unique_ptr<Subprocess> relay_;
  std::unique_ptr<client::Notifier> notifier_;
};

TEST_F(WebhookRelayTest, EachNotifyIsOnePostWithKeyVersionRowsAndHeaders) {
  HttpRecorder endpoint;
  ASSERT_NO_FATAL_FAILURE(
      StartRelay(Endpoint("inventory", endpoint.port(),
                          "  keys { entity: \"items\" id: \"*\" }\n"
                          "  keys { entity: \"items\" id: \"1\" }\n"),
                 2));
  Notify("1", 7, R"({"name":"pen"})");
  Notify("2", 3, R"({"name":"ink"})");
  // Waited for: a newer version notified before a POST starts would replace
  // the older one (conflation), and this test wants one POST per Notify.
  ASSERT_TRUE(endpoint.WaitForAnswered(2)) << relay_->Log();
  Notify("1", 0, "", /*removed=*/false);  // older: never POSTed
  Notify("2", 4, "", /*removed=*/true);
  ASSERT_TRUE(endpoint.WaitForAnswered(3)) << relay_->Log();
  // A marker after them: once it arrives, nothing else is on its way.
  Notify("3", 1, R"({"marker":true})");
  ASSERT_TRUE(WaitFor([&] {
    return RequestsFor(endpoint, "items/3").size() == 1;
  })) << relay_->Log();

  const std::vector<RecordedRequest> one = RequestsFor(endpoint, "items/1");
  ASSERT_EQ(one.size(), 1u) << "the wildcard and the exact key overlap, "
                               "and version 0 is older than 7";
  const RecordedRequest& request = one[0];
  EXPECT_EQ(request.method, "POST");
  EXPECT_EQ(request.target, "/hooks/inventory?source=entitysync");
  EXPECT_EQ(request.header("content-type"), "application/json");
  EXPECT_EQ(request.header("x-entitysync-version"), "7");
  EXPECT_EQ(request.header("x-entitysync-attempt"), "1");
  EXPECT_EQ(request.header("authorization"), kSecret);
  EXPECT_EQ(request.header("x-team"), "inventory");
  const Json body = Json::parse(request.body);
  EXPECT_EQ(body["type"], "update");
  EXPECT_EQ(body["key"]["entity"], "items");
  EXPECT_EQ(body["key"]["id"], "1");
  EXPECT_EQ(body["version"], 7);
  EXPECT_EQ(body["removed"], false);
  ASSERT_EQ(body["rows"].size(), 1u);
  EXPECT_EQ(body["rows"][0]["content_type"], "application/json");
  EXPECT_EQ(body["rows"][0]["json"]["name"], "pen");

  const std::vector<RecordedRequest> two = RequestsFor(endpoint, "items/2");
  ASSERT_EQ(two.size(), 2u);
  EXPECT_EQ(VersionOf(two[0]), 3u);
  EXPECT_EQ(Json::parse(two[0].body)["rows"][0]["json"]["name"], "ink");
  EXPECT_EQ(VersionOf(two[1]), 4u);
  const Json removed = Json::parse(two[1].body);
  EXPECT_EQ(removed["removed"], true);
  EXPECT_TRUE(removed["rows"].empty());
}

TEST_F(WebhookRelayTest, RetriesServerErrorsWithBackoffThenDelivers) {
  HttpRecorder endpoint;
  endpoint.SetResponder([](const RecordedRequest&, int index) {
    Answer answer;
    if (index == 0) answer.status = 500;
    if (index == 1) answer.status = 503;
    return answer;
  });
  ASSERT_NO_FATAL_FAILURE(
      StartRelay(Endpoint("retrying", endpoint.port(),
                          "  keys { entity: \"items\" id: \"1\" }\n"),
                 1));
  Notify("1", 1, R"({"n":1})");
  ASSERT_TRUE(endpoint.WaitForAnswered(3)) << relay_->Log();
  const std::vector<RecordedRequest> requests = endpoint.requests();
  ASSERT_EQ(requests.size(), 3u);
  for (int i = 0; i < 3; ++i) {
    EXPECT_EQ(VersionOf(requests[i]), 1u);
    EXPECT_EQ(requests[i].header("x-entitysync-attempt"), absl::StrCat(i + 1));
    EXPECT_EQ(requests[i].body, requests[0].body);
  }
  // Backoff: at least half the ceiling (40 ms, then 80 ms) between attempts.
  EXPECT_GE(requests[1].received - requests[0].received,
            absl::Milliseconds(20));
  EXPECT_GE(requests[2].received - requests[1].received,
            absl::Milliseconds(40));
  ASSERT_TRUE(WaitFor([&] {
    return absl::StrContains(relay_->Log(), "endpoint answers again");
  })) << relay_->Log();
  EXPECT_TRUE(absl::StrContains(relay_->Log(), "deliveries failing"));
  // Delivered: no further attempt.
  absl::SleepFor(absl::Milliseconds(300));
  EXPECT_EQ(endpoint.requests().size(), 3u);
}

TEST_F(WebhookRelayTest, DiscardCodeIsNotRetriedAndNewerVersionsStillGo) {
  HttpRecorder endpoint;
  endpoint.SetResponder([](const RecordedRequest& request, int) {
    Answer answer;
    if (request.header("x-entitysync-key") == "items/1" &&
        request.header("x-entitysync-version") == "1") {
      answer.status = 410;
    }
    return answer;
  });
  ASSERT_NO_FATAL_FAILURE(
      StartRelay(Endpoint("discarding", endpoint.port(),
                          "  keys { entity: \"items\" id: \"*\" }\n"),
                 1));
  Notify("1", 1, R"({"n":1})");
  ASSERT_TRUE(WaitFor([&] {
    return absl::StrContains(relay_->Log(), "discarded items/1 version 1");
  })) << relay_->Log();
  // Time enough for several retries (40 ms backoff) had it been retried.
  absl::SleepFor(absl::Milliseconds(400));
  Notify("2", 1, R"({"marker":true})");
  ASSERT_TRUE(WaitFor([&] {
    return RequestsFor(endpoint, "items/2").size() == 1;
  })) << relay_->Log();
  EXPECT_EQ(RequestsFor(endpoint, "items/1").size(), 1u) << relay_->Log();

  Notify("1", 2, R"({"n":2})");
  ASSERT_TRUE(WaitFor([&] {
    return RequestsFor(endpoint, "items/1").size() == 2;
  })) << relay_->Log();
  EXPECT_EQ(VersionOf(RequestsFor(endpoint, "items/1")[1]), 2u);
}

TEST_F(WebhookRelayTest, EndpointDownThenSlowGetsNewestAndNeverOlder) {
  const int port = FreePort();
  ASSERT_NO_FATAL_FAILURE(
      StartRelay(Endpoint("late", port,
                          "  keys { entity: \"items\" id: \"1\" }\n"
                          "  max_in_flight: 4\n"),
                 1));
  constexpr int kFirst = 30;
  for (int v = 1; v <= kFirst; ++v)
    Notify("1", v, absl::StrCat("{\"v\":", v, "}"));
  ASSERT_TRUE(WaitFor([&] {
    return absl::StrContains(relay_->Log(), "deliveries failing");
  })) << relay_->Log();

  // The endpoint comes up slow and failing every third request, while more
  // versions arrive.
  HttpRecorder endpoint(port);
  endpoint.SetResponder([](const RecordedRequest&, int index) {
    Answer answer;
    answer.delay = absl::Milliseconds(15);
    if (index % 3 == 1) answer.status = 503;
    return answer;
  });
  constexpr int kLast = 60;
  for (int v = kFirst + 1; v <= kLast; ++v) {
    Notify("1", v, absl::StrCat("{\"v\":", v, "}"));
    absl::SleepFor(absl::Milliseconds(3));
  }
  ASSERT_TRUE(WaitFor(
      [&] {
        for (const RecordedRequest& request : endpoint.requests()) {
          if (request.status == 200 && VersionOf(request) == kLast) {
            return true;
          }
        }
        return false;
      },
      absl::Seconds(20)))
      << relay_->Log();
  absl::SleepFor(absl::Milliseconds(300));

  const std::vector<RecordedRequest> requests = endpoint.requests();
  ASSERT_FALSE(requests.empty());
  EXPECT_GT(VersionOf(requests.front()), 1u)
      << "the first POST is the newest version known when the endpoint came "
         "up, not version 1";
  uint64_t last_sent = 0;
  uint64_t last_delivered = 0;
  for (const RecordedRequest& request : requests) {
    const uint64_t version = VersionOf(request);
    EXPECT_GE(version, last_sent) << "an older version after a newer one";
    last_sent = version;
    if (request.status == 200) {
      EXPECT_GT(version, last_delivered);
      last_delivered = version;
    }
    EXPECT_EQ(Json::parse(request.body)["rows"][0]["json"]["v"], version);
  }
  EXPECT_EQ(last_delivered, static_cast<uint64_t>(kLast));
  EXPECT_EQ(VersionOf(requests.back()), static_cast<uint64_t>(kLast));
}

TEST_F(WebhookRelayTest, SecretsNeverLoggedEvenWhenDeliveriesFail) {
  HttpRecorder endpoint;
  endpoint.SetResponder([](const RecordedRequest& request, int index) {
    Answer answer;
    answer.status = index < 2 ? 500 : 404;
    return answer;
  });
  ASSERT_NO_FATAL_FAILURE(
      StartRelay(Endpoint("noisy", endpoint.port(),
                          "  keys { entity: \"items\" id: \"1\" }\n"),
                 1));
  Notify("1", 1, "{}");
  Notify("1", 2, "{}");
  ASSERT_TRUE(WaitFor([&] {
    return absl::StrContains(relay_->Log(), "discarded items/1");
  })) << relay_->Log();
  // TearDown checks the log for both secrets after SIGTERM.
  EXPECT_TRUE(absl::StrContains(relay_->Log(), "deliveries failing"));
}

class WebhookConfigErrorTest : public ::testing::Test {
 protected:
  // Runs the relay on `config`; returns its exit code and log.
  std::pair<int, std::string> Run(const std::string& config) {
    const std::string path = TempPath("bad.textproto");
    std::ofstream(path) << config;
    Subprocess relay({Binary("adapters/webhook/entitysync-webhook"),
                      absl::StrCat("--config=", path), "--target=127.0.0.1:1"},
                     TempPath("relay.log"));
    const int code = relay.Wait(absl::Seconds(20));
    return {code, relay.Log()};
  }
};

TEST_F(WebhookConfigErrorTest, BadConfigsExitTwoWithPreciseErrors) {
  setenv("WEBHOOK_TEST_SECRET", kSecret, 1);
  unsetenv("WEBHOOK_TEST_UNSET");
  const std::string keys = "keys { entity: \"items\" id: \"1\" }";
  struct Case {
    std::string config;
    std::string error;
  };
  const std::vector<Case> cases = {
      {"endpoints { name: \"a\" url: \"http://x\" " + keys + " }\nbogus: 1\n",
       "line 2, column 6: Message type \"entitysync.webhook.WebhookConfig\" "
       "has "
       "no field named \"bogus\""},
      {"endpoints { name: \"a\" url: \"https://hooks.example/x\" " + keys +
           " }",
       "endpoints[0] \"a\": url: https:// is not supported"},
      {"endpoints { name: \"a\" url: \"http://x\" " + keys +
           " headers { name: \"Authorization\" value_from_env: "
           "\"WEBHOOK_TEST_UNSET\" } }",
       "endpoints[0] \"a\": headers[0] \"Authorization\": environment variable "
       "WEBHOOK_TEST_UNSET is not set or empty"},
      {"endpoints { name: \"a\" url: \"http://x\" " + keys +
           " success_codes: 200 discard_codes: 200 }",
       "endpoints[0] \"a\": discard_codes: 200 is also a success code"},
      {"endpoints { name: \"a\" url: \"http://x\" }",
       "endpoints[0] \"a\": no keys"},
      {"", "no endpoints"},
  };
  for (const Case& c : cases) {
    auto [code, log] = Run(c.config);
    EXPECT_EQ(code, 2) << c.config << "\n" << log;
    EXPECT_TRUE(absl::StrContains(log, c.error)) << c.config << "\n" << log;
    EXPECT_FALSE(absl::StrContains(log, kSecret)) << log;
  }
}

TEST_F(WebhookConfigErrorTest, ExampleConfigIsValid) {
  setenv("ORDERS_HOOK_TOKEN", kSecret, 1);
  Subprocess relay(
      {Binary("adapters/webhook/entitysync-webhook"),
       absl::StrCat("--config=", Binary("adapters/webhook/example.textproto")),
       "--check_config"},
      TempPath("relay.log"));
  EXPECT_EQ(relay.Wait(absl::Seconds(20)), 0) << relay.Log();
  EXPECT_TRUE(absl::StrContains(relay.Log(), "OK, 1 endpoint(s)"))
      << relay.Log();
}

}  // namespace
}  // namespace entitysync::testing
