// CliFlags: the "--name=value" arguments of one `items` subcommand.
//
// Subcommands take different flags, which global absl flags cannot express,
// hence this small parser. Errors (INVALID_ARGUMENT) name the offending
// argument; the caller turns them into a usage error. Immutable after
// Parse; thread-compatible.
#ifndef ENTITYSYNC_EXAMPLES_ITEMS_CLI_FLAGS_H_
#define ENTITYSYNC_EXAMPLES_ITEMS_CLI_FLAGS_H_

#include <map>
#include <optional>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/types/span.h"

namespace entitysync::examples {

class CliFlags {
 public:
  // Fails on an argument that is not --name=value, a name not in `known`,
  // or a name given twice.
  static absl::StatusOr<CliFlags> Parse(
      absl::Span<const char* const> args,
      absl::Span<const absl::string_view> known);

  // The value, possibly empty, or nullopt when the flag was not given.
  std::optional<std::string> Get(absl::string_view name) const;
  std::string GetOr(absl::string_view name, absl::string_view fallback) const;

 private:
  std::map<std::string, std::string, std::less<>> values_;
};

}  // namespace entitysync::examples

#endif  // ENTITYSYNC_EXAMPLES_ITEMS_CLI_FLAGS_H_
