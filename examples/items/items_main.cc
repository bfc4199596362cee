// `items`: runs the example "items" resolver and edits its SQLite database,
// notifying entitysync of each change. See kUsage.
#include <grpcpp/grpcpp.h>
#include <grpcpp/health_check_service_interface.h>
#include <pthread.h>
#include <signal.h>

#include <chrono>
#include <cstdio>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "absl/types/span.h"
#include "entitysync/v1/entitysync.pb.h"
#include "examples/items/cli_flags.h"
#include "examples/items/items_resolve.h"
#include "examples/items/items_resolver.h"
#include "examples/items/items_store.h"
#include "examples/items/notify_client.h"

namespace entitysync::examples {
namespace {

constexpr char kUsage[] = R"(usage: items COMMAND --db=PATH [flags]

The example entitysync resolver for entity type "items", backed by SQLite.

commands:
  serve   --db=PATH [--listen=127.0.0.1:7072] [--delay_ms=0]
          Serve entitysync.v1.Resolver and grpc.health.v1.Health until
          SIGINT or SIGTERM. Prints "items resolver listening on ADDR" to
          stderr when ready (with the real port when --listen asks for 0).
          --delay_ms holds every answer back, to play a slow backend.
  set     --db=PATH --id=ID [--name=NAME] [--price_cents=N] [--tags=a,b,c]
          [--acl=s1,s2] [--notify=127.0.0.1:7071]
          Create or update an item; flags left out keep their value. An
          empty --acl means public; --tags= and --acl= clear. Then calls
          entitysync.v1.Notifier/Notify at --notify with the item's key and
          new version (--notify= skips that). Prints "items/ID version N"
          and "notified".
  delete  --db=PATH --id=ID [--notify=127.0.0.1:7071]
          Delete an item and notify likewise.
  seed    --db=PATH
          Create demo items 100, 101 and 102 if the database has none.

exit status: 0 ok, 1 runtime error, 2 usage error
)";

constexpr char kDefaultListen[] = "127.0.0.1:7072";
constexpr char kDefaultNotify[] = "127.0.0.1:7071";
constexpr absl::Duration kNotifyTimeout = absl::Seconds(5);
// Long enough for in-flight resolves to finish, short enough for a
// supervisor's stop timeout.
constexpr absl::Duration kShutdownGrace = absl::Seconds(5);

int UsageError(absl::string_view message) {
  absl::FPrintF(stderr, "items: %s\n\n%s", message, kUsage);
  return 2;
}

int RuntimeError(const absl::Status& status) {
  absl::FPrintF(stderr, "items: %s\n", status.ToString());
  return 1;
}

std::vector<std::string> SplitList(absl::string_view list) {
  return absl::StrSplit(list, ',', absl::SkipEmpty());
}

// "host:0" with the port the server actually bound.
std::string WithPort(absl::string_view listen, int port) {
  size_t colon = listen.rfind(':');
  absl::string_view host =
      colon == absl::string_view::npos ? listen : listen.substr(0, colon);
  return absl::StrCat(host, ":", port);
}

absl::Status Serve(const std::string& db_path, const std::string& listen,
                   absl::Duration delay) {
  // Blocked before gRPC starts threads, so every thread inherits the mask
  // and the signals reach only the sigwait below.
  sigset_t stop_signals;
  sigemptyset(&stop_signals);
  sigaddset(&stop_signals, SIGINT);
  sigaddset(&stop_signals, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &stop_signals, nullptr);

  absl::StatusOr<std::unique_ptr<ItemsStore>> store = ItemsStore::Open(db_path);
  if (!store.ok()) return store.status();
  ItemsResolver resolver(store->get(), ItemsResolver::Options{delay});

  grpc::EnableDefaultHealthCheckService(true);
  grpc::ServerBuilder builder;
  int port = 0;
  builder.AddListeningPort(listen, grpc::InsecureServerCredentials(), &port);
  builder.RegisterService(&resolver);
  std::unique_ptr<grpc::Server> server = builder.BuildAndStart();
  if (server == nullptr || port == 0) {
    return absl::UnavailableError(absl::StrCat("cannot listen on ", listen));
  }
  absl::FPrintF(stderr, "items resolver listening on %s\n",
                WithPort(listen, port));

  int signal = 0;
  sigwait(&stop_signals, &signal);
  absl::FPrintF(stderr, "items resolver stopping (signal %d)\n", signal);
  // Shutdown marks health NOT_SERVING, refuses new calls and cancels the
  // ones still running at the deadline.
  server->Shutdown(std::chrono::system_clock::now() +
                   absl::ToChronoNanoseconds(kShutdownGrace));
  server->Wait();
  return absl::OkStatus();
}

// Prints the change, then notifies unless `notify` is empty.
int ReportAndNotify(const std::string& id, uint64_t version,
                    const std::string& notify) {
  absl::PrintF("%s/%s version %d\n", kItemsEntity, id, version);
  std::fflush(stdout);
  if (notify.empty()) return 0;
  entitysync::v1::EntityKey key;
  key.set_entity(kItemsEntity);
  key.set_id(id);
  absl::Status notified = NotifyChange(notify, key, version, kNotifyTimeout);
  if (!notified.ok()) {
    return RuntimeError(absl::Status(
        notified.code(),
        absl::StrCat("notify ", notify, ": ", notified.message())));
  }
  absl::PrintF("notified\n");
  return 0;
}

absl::StatusOr<std::unique_ptr<ItemsStore>> OpenStore(const CliFlags& flags) {
  return ItemsStore::Open(flags.GetOr("db", ""));
}

int RunServe(const CliFlags& flags) {
  int64_t delay_ms = 0;
  std::optional<std::string> delay = flags.Get("delay_ms");
  if (delay.has_value() &&
      (!absl::SimpleAtoi(*delay, &delay_ms) || delay_ms < 0)) {
    return UsageError("--delay_ms must be a non-negative integer");
  }
  absl::Status served =
      Serve(flags.GetOr("db", ""), flags.GetOr("listen", kDefaultListen),
            absl::Milliseconds(delay_ms));
  return served.ok() ? 0 : RuntimeError(served);
}

int RunSet(const CliFlags& flags) {
  ItemChange change;
  change.id = flags.GetOr("id", "");
  if (change.id.empty()) return UsageError("set needs --id=ID");
  change.name = flags.Get("name");
  if (std::optional<std::string> price = flags.Get("price_cents")) {
    int64_t cents = 0;
    if (!absl::SimpleAtoi(*price, &cents)) {
      return UsageError("--price_cents must be an integer");
    }
    change.price_cents = cents;
  }
  if (std::optional<std::string> tags = flags.Get("tags")) {
    change.tags = SplitList(*tags);
  }
  if (std::optional<std::string> acl = flags.Get("acl")) {
    change.acl = SplitList(*acl);
  }

  absl::StatusOr<std::unique_ptr<ItemsStore>> store = OpenStore(flags);
  if (!store.ok()) return RuntimeError(store.status());
  absl::StatusOr<uint64_t> version = (*store)->Upsert(change);
  if (!version.ok()) return RuntimeError(version.status());
  return ReportAndNotify(change.id, *version,
                         flags.GetOr("notify", kDefaultNotify));
}

int RunDelete(const CliFlags& flags) {
  std::string id = flags.GetOr("id", "");
  if (id.empty()) return UsageError("delete needs --id=ID");
  absl::StatusOr<std::unique_ptr<ItemsStore>> store = OpenStore(flags);
  if (!store.ok()) return RuntimeError(store.status());
  absl::StatusOr<uint64_t> version = (*store)->Delete(id);
  if (!version.ok()) return RuntimeError(version.status());
  return ReportAndNotify(id, *version, flags.GetOr("notify", kDefaultNotify));
}

ItemChange DemoItem(std::string id, std::string name, int64_t price_cents,
                    std::vector<std::string> tags) {
  ItemChange change;
  change.id = std::move(id);
  change.name = std::move(name);
  change.price_cents = price_cents;
  change.tags = std::move(tags);
  return change;
}

int RunSeed(const CliFlags& flags) {
  const std::vector<ItemChange> demo = {
      DemoItem("100", "Espresso cup", 450, {"kitchen", "ceramic"}),
      DemoItem("101", "Desk lamp", 2999, {"office", "lighting", "led"}),
      DemoItem("102", "Notebook", 799, {"office", "paper"}),
  };
  absl::StatusOr<std::unique_ptr<ItemsStore>> store = OpenStore(flags);
  if (!store.ok()) return RuntimeError(store.status());
  absl::StatusOr<bool> seeded = (*store)->InsertIfEmpty(demo);
  if (!seeded.ok()) return RuntimeError(seeded.status());
  absl::PrintF(*seeded ? "seeded items 100, 101, 102\n"
                       : "database already has items; nothing seeded\n");
  return 0;
}

struct Command {
  absl::string_view name;
  std::vector<absl::string_view> flags;
  int (*run)(const CliFlags&);
};

int Main(int argc, char** argv) {
  if (argc < 2) return UsageError("missing command");
  absl::string_view name = argv[1];
  if (name == "help" || name == "--help" || name == "-h") {
    absl::PrintF("%s", kUsage);
    return 0;
  }
  const Command commands[] = {
      {"serve", {"db", "listen", "delay_ms"}, RunServe},
      {"set",
       {"db", "id", "name", "price_cents", "tags", "acl", "notify"},
       RunSet},
      {"delete", {"db", "id", "notify"}, RunDelete},
      {"seed", {"db"}, RunSeed},
  };
  for (const Command& command : commands) {
    if (command.name != name) continue;
    absl::StatusOr<CliFlags> flags =
        CliFlags::Parse(absl::MakeConstSpan(argv + 2, argc - 2), command.flags);
    if (!flags.ok()) return UsageError(flags.status().message());
    if (flags->GetOr("db", "").empty()) {
      return UsageError(absl::StrCat(name, " needs --db=PATH"));
    }
    return command.run(*flags);
  }
  return UsageError(absl::StrCat("unknown command \"", name, "\""));
}

}  // namespace
}  // namespace entitysync::examples

int main(int argc, char** argv) {
  return entitysync::examples::Main(argc, argv);
}
