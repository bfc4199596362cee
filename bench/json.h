// JSON output helpers for the benchmark tools' RESULT lines. Header-only.
#ifndef ENTITYSYNC_BENCH_JSON_H_
#define ENTITYSYNC_BENCH_JSON_H_

#include <string>

#include "absl/strings/str_format.h"
#include "absl/strings/string_view.h"

namespace entitysync {
namespace bench {

// `s` as a quoted JSON string (control characters, quotes and backslashes
// escaped; other bytes passed through).
inline std::string JsonString(absl::string_view s) {
  std::string out = "\"";
  for (char c : s) {
    if (c == '"' || c == '\\') {
      out.push_back('\\');
      out.push_back(c);
    } else if (static_cast<unsigned char>(c) < 0x20) {
      out += absl::StrFormat("\\u%04x", static_cast<unsigned char>(c));
    } else {
      out.push_back(c);
    }
  }
  out.push_back('"');
  return out;
}

// A finite double with `decimals` decimals (JSON has no NaN or infinity).
inline std::string JsonNumber(double v, int decimals = 3) {
  if (!(v == v) || v > 1e300 || v < -1e300) return "0";
  return absl::StrFormat("%.*f", decimals, v);
}

}  // namespace bench
}  // namespace entitysync

#endif  // ENTITYSYNC_BENCH_JSON_H_
