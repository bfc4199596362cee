// NotifyChange: tells an entitysync replica that one key changed, through
// the raw generated entitysync.v1.Notifier stub. The change carries the
// version and no rows, so the replica resolves the key itself. When the
// environment has ENTITYSYNC_INTERNAL_TOKEN (a replica started with
// --internal_token_file), it is sent as the `authorization` metadata.
//
// Errors: the call's status (UNAVAILABLE when nothing listens at `target`,
// DEADLINE_EXCEEDED after `timeout`, ...). Thread-safe.
#ifndef ENTITYSYNC_EXAMPLES_ITEMS_NOTIFY_CLIENT_H_
#define ENTITYSYNC_EXAMPLES_ITEMS_NOTIFY_CLIENT_H_

#include <cstdint>
#include <string>

#include "absl/status/status.h"
#include "absl/time/time.h"
#include "entitysync/v1/entitysync.pb.h"

namespace entitysync::examples {

absl::Status NotifyChange(const std::string& target,
                          const entitysync::v1::EntityKey& key,
                          uint64_t version, absl::Duration timeout);

}  // namespace entitysync::examples

#endif  // ENTITYSYNC_EXAMPLES_ITEMS_NOTIFY_CLIENT_H_
