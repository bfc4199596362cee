// ParseCliArgs turns the command line of the `entitysync` CLI into CliArgs,
// or a usage error (INVALID_ARGUMENT with a message for the user, shown
// above kUsage). Kept apart from main so it can be tested.
#ifndef ENTITYSYNC_CLIENT_CLI_ARGS_H_
#define ENTITYSYNC_CLIENT_CLI_ARGS_H_

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "client/entity_key.h"

namespace entitysync {
namespace client {

extern const char kUsage[];

inline constexpr char kDefaultSubscribeTarget[] = "127.0.0.1:7070";
inline constexpr char kDefaultNotifyTarget[] = "127.0.0.1:7071";

struct CliArgs {
  enum class Command { kHelp, kSubscribe, kNotify, kStats };
  Command command = Command::kHelp;

  // Defaulted per command when --target is not given.
  std::vector<std::string> targets;
  std::string credentials;
  // TLS to the server (--tls, or any --tls_* file): CAs (empty: the
  // system's roots), and a client certificate and key for mutual TLS.
  bool tls = false;
  std::string tls_ca_file;
  std::string tls_cert_file;
  std::string tls_key_file;
  // subscribe: none means until a signal; notify: the call's deadline.
  std::optional<absl::Duration> timeout;
  std::vector<EntityKey> keys;

  // subscribe: exit after this many updates; 0 means no limit.
  int64_t count = 0;

  // notify
  std::optional<uint64_t> version;
  std::vector<std::string> rows;
  std::string content_type = "application/json";
  bool removed = false;
  bool local_only = false;

  // stats: how many of the most subscribed keys to list.
  int64_t top = 10;
};

// `args` excludes the program name.
absl::StatusOr<CliArgs> ParseCliArgs(const std::vector<std::string>& args);

}  // namespace client
}  // namespace entitysync

#endif  // ENTITYSYNC_CLIENT_CLI_ARGS_H_
