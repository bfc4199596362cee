// Encodes any id bytes as one valid NATS subject token, and back.
//
// NATS subjects are dot-separated tokens; cnats does not validate them, so an
// id with a '.', a space or a wildcard ('*', '>') would otherwise change the
// subject's meaning. The encoding keeps [A-Za-z0-9_-] as they are (readable
// subjects for the common case) and writes every other byte as '~' and two
// upper-case hex digits. It is injective, never empty for a non-empty id,
// and at most three times the id's length. Pure functions; thread-safe.
#ifndef ENTITYSYNC_ADAPTERS_BUS_SUBJECT_TOKEN_H_
#define ENTITYSYNC_ADAPTERS_BUS_SUBJECT_TOKEN_H_

#include <optional>
#include <string>

#include "absl/strings/string_view.h"

namespace entitysync {

std::string EncodeSubjectToken(absl::string_view id);
// nullopt when `token` is not an encoding made by EncodeSubjectToken.
std::optional<std::string> DecodeSubjectToken(absl::string_view token);

// "<prefix>.<entity>.<token>", or "<prefix>.<entity>.*" for the id "*".
// Entities are validated to [A-Za-z0-9_-] before they get here.
std::string KeySubject(absl::string_view prefix, absl::string_view entity,
                       absl::string_view id);

}  // namespace entitysync

#endif  // ENTITYSYNC_ADAPTERS_BUS_SUBJECT_TOKEN_H_
