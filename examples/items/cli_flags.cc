#include "examples/items/cli_flags.h"

#include <algorithm>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"

namespace entitysync::examples {

absl::StatusOr<CliFlags> CliFlags::Parse(
    absl::Span<const char* const> args,
    absl::Span<const absl::string_view> known) {
  CliFlags flags;
  for (absl::string_view arg : args) {
    size_t equals = arg.find('=');
    if (!absl::StartsWith(arg, "--") || equals == absl::string_view::npos) {
      return absl::InvalidArgumentError(
          absl::StrCat("expected --name=value, got \"", arg, "\""));
    }
    absl::string_view name = arg.substr(2, equals - 2);
    if (std::find(known.begin(), known.end(), name) == known.end()) {
      return absl::InvalidArgumentError(absl::StrCat("unknown flag --", name));
    }
    if (!flags.values_.emplace(name, arg.substr(equals + 1)).second) {
      return absl::InvalidArgumentError(
          absl::StrCat("flag --", name, " given twice"));
    }
  }
  return flags;
}

std::optional<std::string> CliFlags::Get(absl::string_view name) const {
  auto it = values_.find(name);
  if (it == values_.end()) return std::nullopt;
  return it->second;
}

std::string CliFlags::GetOr(absl::string_view name,
                            absl::string_view fallback) const {
  std::optional<std::string> value = Get(name);
  return value.has_value() ? *value : std::string(fallback);
}

}  // namespace entitysync::examples
