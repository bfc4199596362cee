// SubscriberEvent is what a Subscriber reports besides updates: connection
// state, the server's answers to subscriptions, stale keys and drains. Plain
// value type; DescribeEvent renders one as a line for humans (the CLI prints
// these to stderr).
#ifndef ENTITYSYNC_CLIENT_SUBSCRIBER_EVENT_H_
#define ENTITYSYNC_CLIENT_SUBSCRIBER_EVENT_H_

#include <string>

#include "absl/status/status.h"
#include "absl/time/time.h"
#include "client/entity_key.h"

namespace entitysync {
namespace client {

struct SubscriberEvent {
  enum class Type {
    // A stream to `target` is established.
    kConnected,
    // The stream to `target` ended with `status`; the next attempt starts in
    // `delay` (to the next target in the rotation).
    kDisconnected,
    // The server accepted the subscription to `key`.
    kSubscribed,
    // The server could not resolve `key` (`reason`); the last update may be
    // out of date until a newer one arrives.
    kStale,
    // The server answered a request about `key` (empty when the request
    // named none) with `status`. `retrying`: the subscription is sent again
    // after `delay` (UNAVAILABLE). `final`: the subscription has been dropped
    // and its callback is never called again (any other code). Neither: the
    // error did not concern a subscription held (e.g. an unsubscribe).
    kError,
    // The server is draining; the subscriber reconnects after `delay`.
    kGoAway,
  };

  explicit SubscriberEvent(Type type) : type(type) {}

  Type type;
  std::string target;
  EntityKey key;
  absl::Status status;
  bool retrying = false;
  bool final = false;
  std::string reason;
  absl::Duration delay = absl::ZeroDuration();
};

// One line, e.g. "error items/100: PERMISSION_DENIED: denied (final)".
std::string DescribeEvent(const SubscriberEvent& event);

}  // namespace client
}  // namespace entitysync

#endif  // ENTITYSYNC_CLIENT_SUBSCRIBER_EVENT_H_
