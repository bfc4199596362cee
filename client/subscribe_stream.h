// SubscribeStream is one EntitySync.Subscribe call made with the gRPC
// callback API. It keeps one read outstanding at all times, queues writes so
// that at most one is in flight, and reports what happens to a sink:
// kUp once the server's initial metadata arrives, kMessage per response, and
// exactly one kDone with the final status, after which the sink is never
// called again. Subscriber is the only user; it keeps the protocol logic and
// this class only the call mechanics.
//
// Ownership: Start returns a shared_ptr; the call also keeps the object alive
// until kDone has been reported, so dropping the pointer early is safe.
//
// Channel lifetime: on Linux gRPC runs callback-API reactions on a
// process-wide completion queue that the destruction of the last
// grpc::Channel tears down, joining its threads; that must not happen on one
// of those threads. The call's ClientContext holds a channel reference, so
// kDone hands the context to the caller instead of destroying it on a gRPC
// thread. The caller keeps the channel until kDone and releases both on a
// thread of its own.
//
// Thread-safety: Write and Cancel may be called from any thread, at any
// time, also after kDone (they are then no-ops). The sink runs on gRPC's
// threads and must not block; it must not call Write or Cancel while holding
// a lock that the sink itself takes.
#ifndef ENTITYSYNC_CLIENT_SUBSCRIBE_STREAM_H_
#define ENTITYSYNC_CLIENT_SUBSCRIBE_STREAM_H_

#include <deque>
#include <functional>
#include <memory>
#include <string>
#include <utility>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "entitysync/v1/entitysync.grpc.pb.h"
#include "grpcpp/channel.h"
#include "grpcpp/client_context.h"
#include "grpcpp/support/client_callback.h"

namespace entitysync {
namespace client {

struct StreamEvent {
  enum class Kind { kUp, kMessage, kDone };
  Kind kind;
  v1::SubscribeResponse message;  // kMessage
  grpc::Status status;            // kDone
  // kDone: the finished call's context, to be released off gRPC's threads.
  std::shared_ptr<grpc::ClientContext> context;
};

class SubscribeStream : public grpc::ClientBidiReactor<v1::SubscribeRequest,
                                                       v1::SubscribeResponse>,
                        public std::enable_shared_from_this<SubscribeStream> {
 public:
  using Sink = std::function<void(StreamEvent)>;

  // Starts the call on `channel`. A non-empty `credentials` is sent as the
  // `authorization` metadata.
  static std::shared_ptr<SubscribeStream> Start(
      const std::shared_ptr<grpc::Channel>& channel,
      const std::string& credentials, Sink sink);

  SubscribeStream(const SubscribeStream&) = delete;
  SubscribeStream& operator=(const SubscribeStream&) = delete;

  // Queues `request`. Dropped silently once the stream is closing: the
  // caller learns about that through kDone and resends on the next stream.
  void Write(v1::SubscribeRequest request);

  // Ends the call promptly; kDone follows with CANCELLED (or the status the
  // call had already ended with).
  void Cancel();

 private:
  explicit SubscribeStream(Sink sink)
      : sink_(std::move(sink)),
        context_(std::make_shared<grpc::ClientContext>()) {}

  void OnReadInitialMetadataDone(bool ok) override;
  void OnReadDone(bool ok) override;
  void OnWriteDone(bool ok) override;
  void OnDone(const grpc::Status& status) override;

  // Called once reads have failed; releases the hold taken in Start (which
  // lets OnDone happen) as soon as no write of ours is in flight.
  void Close();

  // Const after construction.
  const Sink sink_;

  // Owned by the single outstanding read.
  v1::SubscribeResponse response_;
  // Keeps this object alive until OnDone.
  std::shared_ptr<SubscribeStream> self_;

  absl::Mutex mu_;
  // Handed out with kDone; null afterwards.
  std::shared_ptr<grpc::ClientContext> context_ ABSL_GUARDED_BY(mu_);
  std::deque<v1::SubscribeRequest> queued_ ABSL_GUARDED_BY(mu_);
  // The request being written; gRPC reads it until OnWriteDone.
  v1::SubscribeRequest in_flight_ ABSL_GUARDED_BY(mu_);
  bool write_in_flight_ ABSL_GUARDED_BY(mu_) = false;
  bool closing_ ABSL_GUARDED_BY(mu_) = false;
  bool hold_released_ ABSL_GUARDED_BY(mu_) = false;
};

}  // namespace client
}  // namespace entitysync

#endif  // ENTITYSYNC_CLIENT_SUBSCRIBE_STREAM_H_
