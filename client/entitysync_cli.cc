// The `entitysync` command line tool: subscribe to keys and print updates as
// JSON lines, or announce a change. See kUsage in cli_args.cc.
#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "client/cli_args.h"
#include "client/entity_key.h"
#include "client/notifier.h"
#include "client/subscriber.h"
#include "client/update_json.h"
#include "common/grpc_status.h"
#include "common/tls.h"
#include "entitysync/v1/entitysync.grpc.pb.h"
#include "google/protobuf/util/json_util.h"
#include "grpcpp/create_channel.h"

namespace entitysync {
namespace client {
namespace {

// Blocks until SIGINT, SIGTERM or SIGUSR1 (sent by ourselves when done) or
// `timeout`; true when a signal came. The signals must be blocked in every
// thread, which holds because main blocks them before any thread starts.
bool WaitForSignal(const sigset_t& signals,
                   const std::optional<absl::Duration>& timeout) {
  if (!timeout.has_value()) {
    int signal_number;
    return sigwait(&signals, &signal_number) == 0;
  }
  const absl::Time deadline = absl::Now() + *timeout;
  for (;;) {
    const timespec remaining = absl::ToTimespec(
        std::max(deadline - absl::Now(), absl::ZeroDuration()));
    if (sigtimedwait(&signals, nullptr, &remaining) >= 0) return true;
    if (errno != EINTR) return false;
  }
}

// Plaintext, or TLS from --tls / --tls_*_file. Errors name the file.
absl::StatusOr<std::shared_ptr<grpc::ChannelCredentials>> CliChannelCredentials(
    const CliArgs& args) {
  if (!args.tls) return grpc::InsecureChannelCredentials();
  TlsFiles files;
  files.ca_file = args.tls_ca_file;
  files.cert_file = args.tls_cert_file;
  files.key_file = args.tls_key_file;
  return MakeTlsChannelCredentials(files, "--tls_*_file");
}

int RunSubscribe(const CliArgs& args, const sigset_t& signals) {
  std::atomic<int64_t> printed{0};
  std::atomic<size_t> failed_keys{0};
  const auto finish = [] { kill(getpid(), SIGUSR1); };

  auto credentials = CliChannelCredentials(args);
  if (!credentials.ok()) {
    std::fprintf(stderr, "entitysync: %s\n",
                 std::string(credentials.status().message()).c_str());
    return 2;
  }
  SubscriberOptions options;
  options.targets = args.targets;
  options.channel_credentials = *std::move(credentials);
  options.credentials = args.credentials;
  options.on_event = [&](const SubscriberEvent& event) {
    std::fprintf(stderr, "%s\n", DescribeEvent(event).c_str());
    if (event.type == SubscriberEvent::Type::kError && event.final &&
        ++failed_keys == args.keys.size()) {
      finish();  // nothing left that could ever deliver
    }
  };
  absl::StatusOr<std::unique_ptr<Subscriber>> subscriber =
      Subscriber::Create(options);
  if (!subscriber.ok()) {
    std::fprintf(stderr, "entitysync: %s\n",
                 subscriber.status().ToString().c_str());
    return 1;
  }
  // Callbacks run one at a time on the subscriber's thread. An update that
  // matches both a key and its entity's wildcard reaches two callbacks; it is
  // printed once.
  absl::flat_hash_map<std::string, uint64_t> last_printed;
  const auto print = [&](const v1::Update& update) {
    if (args.count > 0 && printed.load() >= args.count) return;
    const std::string key = EntityKeyToString(FromProto(update.key()));
    auto [it, inserted] = last_printed.try_emplace(key, update.version());
    if (!inserted) {
      if (update.version() <= it->second) return;
      it->second = update.version();
    }
    std::printf("%s\n", UpdateToJsonLine(update).c_str());
    std::fflush(stdout);
    if (++printed == args.count) finish();
  };
  for (const EntityKey& key : args.keys) {
    if (absl::Status status = (*subscriber)->Subscribe(key, print);
        !status.ok()) {
      std::fprintf(stderr, "entitysync: %s\n", status.ToString().c_str());
      return 1;
    }
  }
  const bool signalled = WaitForSignal(signals, args.timeout);
  subscriber->reset();  // no callback runs after this

  if (failed_keys.load() == args.keys.size()) return 1;
  if (args.count > 0 && printed.load() < args.count && !signalled) {
    std::fprintf(stderr, "entitysync: timed out after %lld of %lld updates\n",
                 static_cast<long long>(printed.load()),
                 static_cast<long long>(args.count));
    return 1;
  }
  return 0;
}

// notify and stats: --credentials, or else ENTITYSYNC_INTERNAL_TOKEN.
std::string InternalToken(const CliArgs& args) {
  if (!args.credentials.empty()) return args.credentials;
  const char* token = std::getenv("ENTITYSYNC_INTERNAL_TOKEN");
  return token != nullptr ? token : "";
}

int RunStats(const CliArgs& args) {
  auto credentials = CliChannelCredentials(args);
  if (!credentials.ok()) {
    std::fprintf(stderr, "entitysync: %s\n",
                 std::string(credentials.status().message()).c_str());
    return 2;
  }
  auto channel = grpc::CreateChannel(args.targets.front(), *credentials);
  auto stub = v1::Admin::NewStub(channel);
  grpc::ClientContext context;
  context.set_deadline(absl::ToChronoTime(absl::Now() + *args.timeout));
  if (const std::string token = InternalToken(args); !token.empty()) {
    context.AddMetadata("authorization", token);
  }
  v1::StatsRequest request;
  request.set_top_keys(static_cast<uint32_t>(args.top));
  v1::StatsResponse response;
  const grpc::Status status = stub->Stats(&context, request, &response);
  if (!status.ok()) {
    std::fprintf(stderr, "entitysync: %s\n",
                 FromGrpcStatus(status).ToString().c_str());
    return 1;
  }
  std::string json;
  google::protobuf::util::JsonPrintOptions options;
  options.add_whitespace = true;
  options.always_print_primitive_fields = true;
  options.preserve_proto_field_names = true;
  (void)google::protobuf::util::MessageToJsonString(response, &json, options);
  std::printf("%s", json.c_str());
  return 0;
}

int RunNotify(const CliArgs& args) {
  auto credentials = CliChannelCredentials(args);
  if (!credentials.ok()) {
    std::fprintf(stderr, "entitysync: %s\n",
                 std::string(credentials.status().message()).c_str());
    return 2;
  }
  NotifierOptions options;
  options.target = args.targets.front();
  options.channel_credentials = *std::move(credentials);
  options.token = InternalToken(args);
  options.deadline = *args.timeout;
  Notifier notifier(options);

  v1::Change change;
  *change.mutable_key() = ToProto(args.keys.front());
  if (args.version.has_value()) change.set_version(*args.version);
  if (!args.rows.empty() || args.removed) {
    v1::Rows* rows = change.mutable_rows();
    rows->set_removed(args.removed);
    for (const std::string& data : args.rows) {
      v1::Row* row = rows->add_rows();
      row->set_data(data);
      row->set_content_type(args.content_type);
    }
  }
  absl::StatusOr<uint32_t> accepted =
      notifier.Notify({change}, args.local_only);
  if (!accepted.ok()) {
    std::fprintf(stderr, "entitysync: notify failed: %s\n",
                 accepted.status().ToString().c_str());
    return 1;
  }
  std::printf("accepted %u\n", *accepted);
  return 0;
}

}  // namespace
}  // namespace client
}  // namespace entitysync

int main(int argc, char** argv) {
  using entitysync::client::CliArgs;
  const std::vector<std::string> arguments(argv + 1, argv + argc);
  absl::StatusOr<CliArgs> args = entitysync::client::ParseCliArgs(arguments);
  if (!args.ok()) {
    std::fprintf(stderr, "entitysync: %s\n\n%s",
                 std::string(args.status().message()).c_str(),
                 entitysync::client::kUsage);
    return 2;
  }
  switch (args->command) {
    case CliArgs::Command::kHelp:
      std::fputs(entitysync::client::kUsage, stdout);
      return 0;
    case CliArgs::Command::kNotify:
      return entitysync::client::RunNotify(*args);
    case CliArgs::Command::kStats:
      return entitysync::client::RunStats(*args);
    case CliArgs::Command::kSubscribe: {
      sigset_t signals;
      sigemptyset(&signals);
      sigaddset(&signals, SIGINT);
      sigaddset(&signals, SIGTERM);
      sigaddset(&signals, SIGUSR1);
      pthread_sigmask(SIG_BLOCK, &signals, nullptr);
      return entitysync::client::RunSubscribe(*args, signals);
    }
  }
  return 2;
}
