// entitysync-webhook: POSTs entitysync updates to HTTP endpoints listed in a
// config file (webhook_config.proto; example.textproto).

#include <string>
#include <utility>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "adapters/webhook/relay.h"
#include "adapters/webhook/webhook_config.h"
#include "common/log.h"
#include "common/process.h"

ABSL_FLAG(std::string, config, "",
          "The endpoints: a text-format webhook_config.proto file.");
ABSL_FLAG(std::string, target, "127.0.0.1:7070",
          "entitysync's public (Subscribe) port, host:port; several "
          "comma-separated are tried in turn.");
ABSL_FLAG(int, threads, 1, "Threads making HTTP requests.");
ABSL_FLAG(absl::Duration, shutdown_grace, absl::Seconds(5),
          "On SIGTERM, how long requests in flight get to finish.");
ABSL_FLAG(bool, check_config, false,
          "Validate --config (and the environment it names) and exit.");

namespace {

using entitysync::Log;
using entitysync::LogLevel;

// Exit codes: 2 for a bad config or flags, 1 for other start-up failures.
int Run() {
  const std::string config_path = absl::GetFlag(FLAGS_config);
  if (config_path.empty()) {
    Log(LogLevel::kError, "--config is required");
    return 2;
  }
  absl::StatusOr<std::vector<entitysync::webhook::EndpointSpec>> endpoints =
      entitysync::webhook::LoadWebhookConfig(config_path);
  if (!endpoints.ok()) {
    Log(LogLevel::kError,
        absl::StrCat("bad config: ", endpoints.status().message()));
    return 2;
  }
  if (absl::GetFlag(FLAGS_check_config)) {
    Log(LogLevel::kInfo,
        absl::StrCat(config_path, ": OK, ", endpoints->size(), " endpoint(s)"));
    return 0;
  }
  entitysync::webhook::RelayOptions options;
  options.targets =
      absl::StrSplit(absl::GetFlag(FLAGS_target), ',', absl::SkipWhitespace());
  options.threads = absl::GetFlag(FLAGS_threads);

  const std::string target = absl::GetFlag(FLAGS_target);
  absl::StatusOr<std::unique_ptr<entitysync::webhook::Relay>> relay =
      entitysync::webhook::Relay::Start(*std::move(endpoints),
                                        std::move(options));
  if (!relay.ok()) {
    Log(LogLevel::kError, relay.status().ToString());
    return absl::IsInvalidArgument(relay.status()) ? 2 : 1;
  }
  Log(LogLevel::kInfo,
      absl::StrCat("entitysync-webhook relaying from ", target));
  entitysync::WaitForStopSignal("stopping");
  (*relay)->Stop(absl::GetFlag(FLAGS_shutdown_grace));
  Log(LogLevel::kInfo, "stopped");
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  entitysync::StartProcess(
      argc, argv,
      "entitysync-webhook: POSTs entitysync updates to HTTP endpoints.\n"
      "  entitysync-webhook --config=webhooks.textproto "
      "[--target=127.0.0.1:7070]");
  return Run();
}
