// Subscriber: what the hub and the resolve scheduler see of a session.
//
// Deliver must never block: it enqueues and returns. The Session is the one
// real implementation; tests use a recording fake.
#ifndef ENTITYSYNC_SERVER_FANOUT_SUBSCRIBER_H_
#define ENTITYSYNC_SERVER_FANOUT_SUBSCRIBER_H_

#include "server/session/outbound_message.h"

namespace entitysync {

class Subscriber {
 public:
  virtual ~Subscriber() = default;
  // An update or stale signal for a key this subscriber holds, directly or
  // through a wildcard. The subscriber drops versions older than it has.
  virtual void Deliver(const OutboundMessage& msg) = 0;
};

}  // namespace entitysync

#endif  // ENTITYSYNC_SERVER_FANOUT_SUBSCRIBER_H_
