#include "adapters/gateway/static_files.h"

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <utility>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"

namespace entitysync {
namespace gateway {
namespace {

absl::string_view ContentTypeFor(absl::string_view path) {
  static constexpr std::pair<absl::string_view, absl::string_view> kTypes[] = {
      {".html", "text/html; charset=utf-8"},
      {".js", "text/javascript; charset=utf-8"},
      {".mjs", "text/javascript; charset=utf-8"},
      {".css", "text/css; charset=utf-8"},
      {".json", "application/json"},
      {".map", "application/json"},
      {".svg", "image/svg+xml"},
      {".png", "image/png"},
      {".ico", "image/x-icon"},
      {".txt", "text/plain; charset=utf-8"},
  };
  for (const auto& [suffix, type] : kTypes) {
    if (absl::EndsWith(path, suffix)) return type;
  }
  return "application/octet-stream";
}

}  // namespace

absl::StatusOr<std::vector<StaticMount>> ParseStaticMounts(
    absl::string_view spec) {
  std::vector<StaticMount> mounts;
  for (absl::string_view entry : absl::StrSplit(spec, ',', absl::SkipEmpty())) {
    std::pair<absl::string_view, absl::string_view> parts =
        absl::StrSplit(entry, absl::MaxSplits('=', 1));
    if (parts.second.empty() || !absl::StartsWith(parts.first, "/")) {
      return absl::InvalidArgumentError(
          absl::StrCat("static mount \"", entry,
                       "\" is not PREFIX=DIR with PREFIX starting with /"));
    }
    StaticMount mount{std::string(parts.first), std::string(parts.second)};
    if (!absl::EndsWith(mount.url_prefix, "/")) mount.url_prefix += "/";
    mounts.push_back(std::move(mount));
  }
  return mounts;
}

StaticFiles::StaticFiles(std::vector<StaticMount> mounts)
    : mounts_(std::move(mounts)) {
  std::stable_sort(mounts_.begin(), mounts_.end(),
                   [](const StaticMount& a, const StaticMount& b) {
                     return a.url_prefix.size() > b.url_prefix.size();
                   });
}

absl::StatusOr<StaticFile> StaticFiles::Get(absl::string_view target) const {
  absl::string_view path = target.substr(0, target.find_first_of("?#"));
  if (absl::StrContains(path, "..") || absl::StrContains(path, "%") ||
      absl::StrContains(path, "\\") ||
      path.find('\0') != absl::string_view::npos ||
      absl::StrContains(path, "//")) {
    return absl::InvalidArgumentError("refused path");
  }
  for (const StaticMount& mount : mounts_) {
    if (!absl::StartsWith(path, mount.url_prefix)) continue;
    std::string file = absl::StrCat(mount.directory, "/",
                                    path.substr(mount.url_prefix.size()));
    if (absl::EndsWith(file, "/")) file += "index.html";
    std::error_code error;
    if (!std::filesystem::is_regular_file(file, error)) continue;
    std::ifstream in(file, std::ios::binary);
    if (!in) continue;
    std::ostringstream body;
    body << in.rdbuf();
    if (in.bad()) continue;
    return StaticFile{std::string(ContentTypeFor(file)), body.str()};
  }
  return absl::NotFoundError("no such file");
}

}  // namespace gateway
}  // namespace entitysync
