// Static files for the gateway's optional web pages: URL prefixes mapped to
// directories ("/" → examples/web, "/lib/" → client/web/dist). Only GET of
// plain files below a mount; paths with "..", "%", "\" or NUL are refused,
// so nothing outside the mounted directories can be read. A path ending in
// "/" serves index.html. Files are read on each request (they are small and
// may be rebuilt while the gateway runs).
//
// Thread-safe: const after construction.
#ifndef ENTITYSYNC_ADAPTERS_GATEWAY_STATIC_FILES_H_
#define ENTITYSYNC_ADAPTERS_GATEWAY_STATIC_FILES_H_

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace entitysync {
namespace gateway {

struct StaticMount {
  std::string url_prefix;  // starts and ends with "/"
  std::string directory;
};

// Parses "PREFIX=DIR,PREFIX=DIR" (e.g. "/=examples/web,/lib/=client/web/dist").
absl::StatusOr<std::vector<StaticMount>> ParseStaticMounts(
    absl::string_view spec);

struct StaticFile {
  std::string content_type;
  std::string body;
};

class StaticFiles {
 public:
  explicit StaticFiles(std::vector<StaticMount> mounts);

  bool empty() const { return mounts_.empty(); }

  // The file for a request target (query string ignored). NOT_FOUND when no
  // mount or file matches, INVALID_ARGUMENT for a refused path.
  absl::StatusOr<StaticFile> Get(absl::string_view target) const;

 private:
  std::vector<StaticMount> mounts_;  // longest prefix first
};

}  // namespace gateway
}  // namespace entitysync

#endif  // ENTITYSYNC_ADAPTERS_GATEWAY_STATIC_FILES_H_
