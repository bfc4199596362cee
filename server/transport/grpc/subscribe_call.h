// SubscribeCall: one EntitySync.Subscribe stream on gRPC's async API, the
// gRPC transport of a Session (server/session/session.h).
//
// A call lives on the IoThread whose completion queue accepted it: every
// completion of its operations runs there, and the session calls Write,
// Finish and CancelWrite only there, so the call's own state needs no lock.
// One read is kept in flight (until the client half-closes or the session
// closes), one write at most (a session's Write of several messages is one
// batch message, or a run of gRPC writes one after the other); Finish once. The
// call frees itself when gRPC reports it done (AsyncNotifyWhenDone) and no
// operation is outstanding.
//
// Listen keeps one call requested on a thread: each accepted call requests
// the next before it does anything else, so accepts never wait for a call's
// work.
#ifndef ENTITYSYNC_SERVER_TRANSPORT_GRPC_SUBSCRIBE_CALL_H_
#define ENTITYSYNC_SERVER_TRANSPORT_GRPC_SUBSCRIBE_CALL_H_

#include <memory>

#include "entitysync/v1/entitysync.grpc.pb.h"
#include "grpcpp/server_context.h"
#include "grpcpp/support/async_stream.h"
#include "grpcpp/support/byte_buffer.h"
#include "server/session/session.h"
#include "server/session/session_transport.h"
#include "server/transport/grpc/io_threads.h"

namespace entitysync {

// The async raw Subscribe method (the service may add others beside it).
using AsyncSubscribeService =
    v1::EntitySync::WithRawMethod_Subscribe<v1::EntitySync::Service>;

// Where a thread's Subscribe calls are requested and what their sessions
// share. Outlives every call it starts.
struct SubscribeListener {
  AsyncSubscribeService* service = nullptr;
  IoThread* thread = nullptr;
  SessionDeps deps;
};

class SubscribeCall final : public SessionTransport {
 public:
  // Requests one call on the listener's thread.
  static void Listen(const SubscribeListener* listener);

  SubscribeCall(const SubscribeCall&) = delete;
  SubscribeCall& operator=(const SubscribeCall&) = delete;

  // SessionTransport; on the call's thread.
  void Write(OutboundBatch messages) override;
  void Finish(const grpc::Status& status) override;
  void CancelWrite() override;

 private:
  explicit SubscribeCall(const SubscribeListener* listener);
  ~SubscribeCall() = default;

  void OnAccepted(bool ok);
  void OnMetadataSent(bool ok);
  void OnRead(bool ok);
  void OnWritten(bool ok);
  void OnFinished(bool ok);
  void OnCallDone(bool ok);
  void StartRead();
  // The next message of a Write the client takes one by one.
  void WriteNextUnflushed();
  // Frees the call once gRPC is done with it and nothing is outstanding.
  void MaybeDelete();

  const SubscribeListener* const listener_;
  // First: released last, once nothing of the call can start an operation.
  IoThread::LiveCall live_;
  grpc::ServerContext context_;
  grpc::ServerAsyncReaderWriter<grpc::ByteBuffer, grpc::ByteBuffer> stream_{
      &context_};
  grpc::ByteBuffer read_buffer_;
  // Null when the call was refused; dropped at OnCallDone.
  std::shared_ptr<Session> session_;
  // Set by the `entitysync-batch: 1` metadata: several messages of one
  // Write leave as one SubscribeResponse.batch. Otherwise they leave as a
  // sequence of writes of which all but the last carry gRPC's buffer hint,
  // so they reach the socket together (measured: bench/README, "Several
  // updates in one write").
  bool client_takes_batches_ = false;
  OutboundBatch unflushed_;
  size_t next_unflushed_ = 0;
  // Operations started and not completed, the done notice included.
  int outstanding_ = 0;
  bool done_ = false;

  IoTagOf<SubscribeCall, &SubscribeCall::OnAccepted> accepted_tag_{this};
  IoTagOf<SubscribeCall, &SubscribeCall::OnMetadataSent> metadata_tag_{this};
  IoTagOf<SubscribeCall, &SubscribeCall::OnRead> read_tag_{this};
  IoTagOf<SubscribeCall, &SubscribeCall::OnWritten> write_tag_{this};
  IoTagOf<SubscribeCall, &SubscribeCall::OnFinished> finish_tag_{this};
  IoTagOf<SubscribeCall, &SubscribeCall::OnCallDone> done_tag_{this};
};

}  // namespace entitysync

#endif  // ENTITYSYNC_SERVER_TRANSPORT_GRPC_SUBSCRIBE_CALL_H_
