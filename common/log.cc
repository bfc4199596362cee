#include "common/log.h"

#include <atomic>
#include <cstdio>
#include <string>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"

namespace entitysync {
namespace {

std::atomic<bool> json_logs{false};

const char* LevelName(LogLevel level) {
  switch (level) {
    case LogLevel::kInfo:
      return "info";
    case LogLevel::kWarning:
      return "warning";
    case LogLevel::kError:
      return "error";
  }
  return "info";
}

std::string JsonEscape(absl::string_view s) {
  std::string out;
  for (char c : s) {
    switch (c) {
      case '"':
        out += "\\\"";
        break;
      case '\\':
        out += "\\\\";
        break;
      case '\n':
        out += "\\n";
        break;
      default:
        if (static_cast<unsigned char>(c) < 0x20) {
          out += absl::StrFormat("\\u%04x", c);
        } else {
          out += c;
        }
    }
  }
  return out;
}

}  // namespace

void SetJsonLogs(bool json) { json_logs = json; }

void Log(LogLevel level, absl::string_view message) {
  const std::string time = absl::FormatTime("%Y-%m-%dT%H:%M:%E3SZ", absl::Now(),
                                            absl::UTCTimeZone());
  std::string line;
  if (json_logs) {
    line =
        absl::StrCat("{\"time\":\"", time, "\",\"level\":\"", LevelName(level),
                     "\",\"msg\":\"", JsonEscape(message), "\"}\n");
  } else {
    line = absl::StrCat(time, " ", LevelName(level), " ", message, "\n");
  }
  std::fwrite(line.data(), 1, line.size(), stderr);
}

}  // namespace entitysync
