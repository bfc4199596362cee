// Strict UTF-8 (RFC 3629) checks: no overlong forms, no surrogates, nothing
// above U+10FFFF. Protobuf `string` fields and JSON text both require valid
// UTF-8, so untrusted text is checked before it reaches either.
//
// Pure functions; thread-safe.
#ifndef ENTITYSYNC_COMMON_UTF8_H_
#define ENTITYSYNC_COMMON_UTF8_H_

#include <cstddef>

#include "absl/strings/string_view.h"

namespace entitysync {

// Length (1 to 4) of the valid UTF-8 sequence that starts `text`, or 0 when
// `text` is empty or does not start with one.
size_t Utf8SequenceLength(absl::string_view text);

bool IsValidUtf8(absl::string_view text);

// The longest prefix of `text` of at most `max_bytes` that does not end in
// the middle of a UTF-8 sequence (for cutting untrusted strings that go
// into protobuf string fields).
absl::string_view TruncateUtf8(absl::string_view text, size_t max_bytes);

}  // namespace entitysync

#endif  // ENTITYSYNC_COMMON_UTF8_H_
