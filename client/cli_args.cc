#include "client/cli_args.h"

#include <utility>

#include "absl/container/flat_hash_set.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"

namespace entitysync {
namespace client {

const char kUsage[] =
    R"(usage:
  entitysync [--target=HOST:PORT[,HOST:PORT...]] [--credentials=SECRET]
             [--tls] [--tls_ca_file=PEM] [--tls_cert_file=PEM --tls_key_file=PEM]
             subscribe [--count=N] [--timeout=SECONDS] KEY...
  entitysync [--target=HOST:PORT] [--credentials=TOKEN]
             notify KEY [--version=N] [--row=DATA]... [--content_type=TYPE]
             [--removed] [--local_only] [--timeout=SECONDS]
  entitysync [--target=HOST:PORT] [--credentials=TOKEN]
             stats [--top=N] [--timeout=SECONDS]

KEY is ENTITY/ID, split at the first '/' (so ids may contain '/'); in
subscribe, ID "*" means every id of the entity.

subscribe  Prints each update as one JSON line on stdout, events (connection,
           subscribed, stale, errors) on stderr. Target default
           127.0.0.1:7070; several targets are tried in turn on reconnect.
           Runs until SIGINT/SIGTERM, or until N updates (--count), or for
           SECONDS (--timeout; exits 1 if --count was not reached).
notify     Announces a change on the internal port (default 127.0.0.1:7071)
           and prints "accepted N". --row (repeatable) sends inline rows of
           --content_type (default application/json); --removed marks the
           entity deleted; --timeout is the deadline (default 5).
stats      Prints the replica's Admin.Stats as JSON (internal port, default
           127.0.0.1:7071): streams, subscriptions, the --top (10) most
           subscribed keys, bus state, resolver calls and latency per entity.

TLS: --tls (the system's roots), or --tls_ca_file=PEM for the server's
CAs; --tls_cert_file=PEM --tls_key_file=PEM add a client certificate
(mutual TLS), with any command.

notify and stats send --credentials, or else the environment's
ENTITYSYNC_INTERNAL_TOKEN, as the internal token (a replica started with
--internal_token_file requires it); the environment keeps it out of process
lists.

Flags take --name=value or --name value. Exit status: 0 ok, 1 runtime
error, 2 usage error.
)";

namespace {

using Command = CliArgs::Command;

absl::Status UsageError(absl::string_view message) {
  return absl::InvalidArgumentError(message);
}

bool TakesValue(absl::string_view name) {
  return name == "target" || name == "credentials" || name == "timeout" ||
         name == "count" || name == "version" || name == "row" ||
         name == "content_type" || name == "top" || name == "tls_ca_file" ||
         name == "tls_cert_file" || name == "tls_key_file";
}

bool IsBoolean(absl::string_view name) {
  return name == "removed" || name == "local_only" || name == "help" ||
         name == "tls";
}

bool OnlyForSubscribe(absl::string_view name) { return name == "count"; }

bool OnlyForStats(absl::string_view name) { return name == "top"; }

bool OnlyForNotify(absl::string_view name) {
  return name == "version" || name == "row" || name == "content_type" ||
         name == "removed" || name == "local_only";
}

absl::Status ApplyFlag(absl::string_view name, const std::string& value,
                       CliArgs& out) {
  if (name == "target") {
    out.targets.clear();
    for (absl::string_view target :
         absl::StrSplit(value, ',', absl::SkipWhitespace())) {
      out.targets.emplace_back(target);
    }
    if (out.targets.empty()) return UsageError("--target is empty");
  } else if (name == "credentials") {
    out.credentials = value;
  } else if (name == "tls") {
    out.tls = true;
  } else if (name == "tls_ca_file") {
    out.tls = true;
    out.tls_ca_file = value;
  } else if (name == "tls_cert_file") {
    out.tls = true;
    out.tls_cert_file = value;
  } else if (name == "tls_key_file") {
    out.tls = true;
    out.tls_key_file = value;

  } else if (name == "timeout") {
    double seconds;
    if (!absl::SimpleAtod(value, &seconds) || !(seconds > 0)) {
      return UsageError("--timeout must be a positive number of seconds");
    }
    out.timeout = absl::Seconds(seconds);
  } else if (name == "top") {
    if (!absl::SimpleAtoi(value, &out.top) || out.top < 1 || out.top > 1000) {
      return UsageError("--top takes a number from 1 to 1000");
    }
  } else if (name == "count") {
    if (!absl::SimpleAtoi(value, &out.count) || out.count <= 0) {
      return UsageError("--count must be a positive integer");
    }
  } else if (name == "version") {
    uint64_t version;
    if (!absl::SimpleAtoi(value, &version)) {
      return UsageError("--version must be a non-negative integer");
    }
    out.version = version;
  } else if (name == "row") {
    out.rows.push_back(value);
  } else if (name == "content_type") {
    out.content_type = value;
  } else if (name == "removed") {
    out.removed = true;
  } else if (name == "local_only") {
    out.local_only = true;
  }
  return absl::OkStatus();
}

absl::Status Validate(const std::vector<std::string>& positional,
                      const std::vector<std::string>& flags_seen,
                      CliArgs& out) {
  const std::string& command = positional.front();
  if (command == "subscribe") {
    out.command = Command::kSubscribe;
  } else if (command == "notify") {
    out.command = Command::kNotify;
  } else if (command == "stats") {
    out.command = Command::kStats;
  } else {
    return UsageError(absl::StrCat("unknown command \"", command, "\""));
  }
  for (const std::string& flag : flags_seen) {
    if ((out.command != Command::kNotify && OnlyForNotify(flag)) ||
        (out.command != Command::kSubscribe && OnlyForSubscribe(flag)) ||
        (out.command != Command::kStats && OnlyForStats(flag))) {
      return UsageError(
          absl::StrCat("--", flag, " does not apply to ", command));
    }
  }
  absl::flat_hash_set<EntityKey> seen;
  for (size_t i = 1; i < positional.size(); ++i) {
    absl::StatusOr<EntityKey> key = ParseEntityKey(positional[i]);
    if (!key.ok()) return UsageError(key.status().message());
    if (!seen.insert(*key).second) {
      return UsageError(absl::StrCat("key ", positional[i], " given twice"));
    }
    out.keys.push_back(*std::move(key));
  }
  if (out.command == Command::kStats) {
    if (!out.keys.empty()) return UsageError("stats takes no KEY");
    if (out.targets.size() > 1) return UsageError("stats takes one --target");
    if (out.targets.empty()) out.targets = {kDefaultNotifyTarget};
    if (!out.timeout.has_value()) out.timeout = absl::Seconds(5);
    return absl::OkStatus();
  }
  if (out.command == Command::kSubscribe) {
    if (out.keys.empty()) return UsageError("subscribe needs at least one KEY");
    if (out.targets.empty()) out.targets = {kDefaultSubscribeTarget};
    return absl::OkStatus();
  }
  if (out.keys.size() != 1) return UsageError("notify needs exactly one KEY");
  if (out.keys.front().is_wildcard()) {
    return UsageError("notify needs a concrete id, not \"*\"");
  }
  if (out.removed && !out.rows.empty()) {
    return UsageError("--removed and --row exclude each other");
  }
  if (out.targets.size() > 1) return UsageError("notify takes one --target");
  if (out.targets.empty()) out.targets = {kDefaultNotifyTarget};
  if (!out.timeout.has_value()) out.timeout = absl::Seconds(5);
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<CliArgs> ParseCliArgs(const std::vector<std::string>& args) {
  CliArgs out;
  std::vector<std::string> positional;
  std::vector<std::string> flags_seen;
  bool help = false;
  bool flags_done = false;
  for (size_t i = 0; i < args.size(); ++i) {
    const std::string& arg = args[i];
    if (flags_done || arg.size() < 2 || arg[0] != '-') {
      positional.push_back(arg);
      continue;
    }
    if (arg == "--") {
      flags_done = true;
      continue;
    }
    if (arg == "-h") {
      help = true;
      continue;
    }
    absl::string_view body(arg);
    body.remove_prefix(arg[1] == '-' ? 2 : 1);
    const size_t equals = body.find('=');
    const std::string name(body.substr(0, equals));
    std::string value;
    if (IsBoolean(name)) {
      if (equals != absl::string_view::npos) {
        return UsageError(absl::StrCat("--", name, " takes no value"));
      }
    } else if (TakesValue(name)) {
      if (equals != absl::string_view::npos) {
        value = std::string(body.substr(equals + 1));
      } else if (i + 1 < args.size()) {
        value = args[++i];
      } else {
        return UsageError(absl::StrCat("--", name, " needs a value"));
      }
    } else {
      return UsageError(absl::StrCat("unknown flag ", arg));
    }
    if (name == "help") {
      help = true;
      continue;
    }
    flags_seen.push_back(name);
    if (absl::Status status = ApplyFlag(name, value, out); !status.ok()) {
      return status;
    }
  }
  if (help) {
    out.command = Command::kHelp;
    return out;
  }
  if (positional.empty()) return UsageError("missing command");
  if (absl::Status status = Validate(positional, flags_seen, out);
      !status.ok()) {
    return status;
  }
  return out;
}

}  // namespace client
}  // namespace entitysync
