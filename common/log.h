// Minimal process log: one line per event on stderr, plain or JSON (one
// object per line). Callers never pass credentials or tokens. Thread-safe.
#ifndef ENTITYSYNC_COMMON_LOG_H_
#define ENTITYSYNC_COMMON_LOG_H_

#include "absl/strings/string_view.h"

namespace entitysync {

enum class LogLevel { kInfo, kWarning, kError };

void SetJsonLogs(bool json);
void Log(LogLevel level, absl::string_view message);

}  // namespace entitysync

#endif  // ENTITYSYNC_COMMON_LOG_H_
