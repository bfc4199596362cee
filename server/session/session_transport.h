// The seam between the session core (server/session/session.h) and a
// transport (a gRPC Subscribe stream today; a WebSocket next).
//
// SessionExecutor is where a transport's work runs: one thread (an I/O
// thread) or a strand. It outlives every session that uses it, so any thread
// may post to it. SessionTransport is one stream; the session calls it only
// from tasks on its executor, with no session lock held, and never after
// Session::OnDone.
#ifndef ENTITYSYNC_SERVER_SESSION_SESSION_TRANSPORT_H_
#define ENTITYSYNC_SERVER_SESSION_SESSION_TRANSPORT_H_

#include <vector>

#include "absl/functional/any_invocable.h"
#include "grpcpp/support/status.h"
#include "server/session/outbound_message.h"

namespace entitysync {

class SessionExecutor {
 public:
  virtual ~SessionExecutor() = default;
  // Runs `task` on the executor, after the tasks posted before it.
  virtual void Post(absl::AnyInvocable<void() &&> task) = 0;
  // True on the executor's own thread (work may run inline).
  virtual bool IsCurrent() const = 0;
  // Whether many sessions share the executor (an I/O thread), so that a
  // DeliveryBatch groups their wake-ups; false for one per connection.
  virtual bool Shared() const { return true; }
};

// Groups the wake-ups of one burst of deliveries: while a DeliveryBatch
// lives on a thread, a session of another executor that needs waking is
// added to it, and when the outermost batch ends it posts one task per
// executor that wakes all of them. A fan-out to N sessions on an I/O thread
// then costs that thread one hand-off, not N. Batches nest; not shared
// between threads.
class DeliveryBatch {
 public:
  DeliveryBatch();
  ~DeliveryBatch();
  DeliveryBatch(const DeliveryBatch&) = delete;
  DeliveryBatch& operator=(const DeliveryBatch&) = delete;

  // Takes `task` for `executor` when a batch is open on this thread (and
  // returns true); otherwise leaves it with the caller.
  static bool Add(SessionExecutor* executor,
                  absl::AnyInvocable<void() &&>& task);

 private:
  struct Group {
    SessionExecutor* executor;
    std::vector<absl::AnyInvocable<void() &&>> tasks;
  };
  DeliveryBatch* const outer_;
  std::vector<Group> groups_;  // few: one per executor
};

class SessionTransport {
 public:
  // Writes `messages` (one, or several that waited together) in order, as
  // one write; the transport answers with one Session::OnWriteDone. At most
  // one write is in flight.
  virtual void Write(OutboundBatch messages) = 0;
  // Ends the stream with `status`: once, never with a write in flight.
  virtual void Finish(const grpc::Status& status) = 0;
  // Makes the write in flight fail (a client that stopped reading); its
  // OnWriteDone(false) follows.
  virtual void CancelWrite() = 0;
  // Whether a Write may carry several messages. A transport that hands
  // them on one at a time anyway says no: what waits then stays in the
  // session's queue, where a newer update still replaces an older one.
  virtual bool TakesSeveral() const { return true; }

 protected:
  ~SessionTransport() = default;
};

}  // namespace entitysync

#endif  // ENTITYSYNC_SERVER_SESSION_SESSION_TRANSPORT_H_
