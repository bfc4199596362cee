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

#include "absl/functional/any_invocable.h"
#include "grpcpp/support/status.h"
#include "server/outbound_message.h"

namespace entitysync {

class SessionExecutor {
 public:
  virtual ~SessionExecutor() = default;
  // Runs `task` on the executor, after the tasks posted before it.
  virtual void Post(absl::AnyInvocable<void() &&> task) = 0;
  // True on the executor's own thread (work may run inline).
  virtual bool IsCurrent() const = 0;
};

class SessionTransport {
 public:
  // Writes one message; the transport answers with Session::OnWriteDone.
  // At most one write is in flight.
  virtual void Write(OutboundMessage message) = 0;
  // Ends the stream with `status`: once, never with a write in flight.
  virtual void Finish(const grpc::Status& status) = 0;
  // Makes the write in flight fail (a client that stopped reading); its
  // OnWriteDone(false) follows.
  virtual void CancelWrite() = 0;

 protected:
  ~SessionTransport() = default;
};

}  // namespace entitysync

#endif  // ENTITYSYNC_SERVER_SESSION_SESSION_TRANSPORT_H_
