#include "client/subscriber_event.h"

#include "absl/strings/str_cat.h"

namespace entitysync {
namespace client {

std::string DescribeEvent(const SubscriberEvent& event) {
  using Type = SubscriberEvent::Type;
  switch (event.type) {
    case Type::kConnected:
      return absl::StrCat("connected to ", event.target);
    case Type::kDisconnected:
      return absl::StrCat("disconnected from ", event.target, ": ",
                          event.status.ToString(), "; reconnecting in ",
                          absl::FormatDuration(event.delay));
    case Type::kSubscribed:
      return absl::StrCat("subscribed ", EntityKeyToString(event.key));
    case Type::kStale:
      return absl::StrCat("stale ", EntityKeyToString(event.key), ": ",
                          event.reason);
    case Type::kError:
      return absl::StrCat(
          "error",
          event.key.entity.empty() ? "" : " " + EntityKeyToString(event.key),
          ": ", event.status.ToString(),
          event.final ? " (final)"
          : event.retrying
              ? absl::StrCat(" (retrying in ",
                             absl::FormatDuration(event.delay), ")")
              : "");
    case Type::kGoAway:
      return absl::StrCat("goaway from ", event.target, "; reconnecting in ",
                          absl::FormatDuration(event.delay));
  }
  return "unknown event";
}

}  // namespace client
}  // namespace entitysync
