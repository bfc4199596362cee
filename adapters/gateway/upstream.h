// The gateway's side of the service: every browser connection or grpc-web
// call is one EntitySync.Subscribe stream (UpstreamStream) on a channel of
// the UpstreamPool.
//
// Flow control: an UpstreamStream reads one message and then waits until
// its owner asks for the next (ReadNext), after it has handed the previous
// one to the browser. So a browser that reads slowly makes the gateway read
// slowly, and the service's own slow-consumer policy (conflate per key, then
// RESOURCE_EXHAUSTED) applies; the gateway never buffers more than one
// message per connection.
//
// Channels: the service caps concurrent streams per HTTP/2 connection
// (--max_concurrent_streams), so the pool opens another channel, with its
// own connection, whenever every open one carries `streams_per_channel`
// streams.
//
// Lifetime: channels live as long as the pool, which must outlive every
// stream it started (Gateway waits for them; see WaitUntilIdle). Stream
// events run on gRPC's threads and must not block.
#ifndef ENTITYSYNC_ADAPTERS_GATEWAY_UPSTREAM_H_
#define ENTITYSYNC_ADAPTERS_GATEWAY_UPSTREAM_H_

#include <cstddef>
#include <deque>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "adapters/gateway/subscribe_link.h"
#include "entitysync/v1/entitysync.grpc.pb.h"
#include "grpcpp/channel.h"
#include "grpcpp/client_context.h"
#include "grpcpp/security/credentials.h"
#include "grpcpp/support/client_callback.h"

namespace entitysync {
namespace gateway {

// Whether `value` can be sent as gRPC metadata (printable ASCII only); gRPC
// aborts the process on anything else, so browser headers are checked first.
bool IsValidMetadataValue(absl::string_view value);

class UpstreamPool {
 public:
  using ChannelFactory = std::function<std::shared_ptr<grpc::Channel>()>;

  // `factory` makes one new channel (with its own connection) per call.
  UpstreamPool(ChannelFactory factory, int streams_per_channel);

  // A plaintext (or `credentials`) channel factory for host:port `target`.
  // `server_name`, when not empty, is checked against the server's TLS
  // certificate instead of the target's host.
  static ChannelFactory TcpChannels(
      const std::string& target, int max_message_bytes,
      std::shared_ptr<grpc::ChannelCredentials> credentials,
      const std::string& server_name = "");

  // The channel for a new stream, and its slot for Release.
  std::shared_ptr<grpc::Channel> Acquire(size_t* slot);
  void Release(size_t slot);

  // Streams open now.
  size_t streams() const;
  // Waits until no stream is open; false on timeout.
  bool WaitUntilIdle(absl::Duration timeout) const;

 private:
  const ChannelFactory factory_;
  const int streams_per_channel_;

  mutable absl::Mutex mu_;
  std::vector<std::shared_ptr<grpc::Channel>> channels_ ABSL_GUARDED_BY(mu_);
  std::vector<int> counts_ ABSL_GUARDED_BY(mu_);
  size_t streams_ ABSL_GUARDED_BY(mu_) = 0;
};

// The SubscribeLink of the standalone gateway: a Subscribe call to the
// service on a channel of the pool.
class UpstreamStream : public grpc::ClientBidiReactor<v1::SubscribeRequest,
                                                      v1::SubscribeResponse>,
                       public SubscribeLink {
 public:
  // Starts a stream; a non-empty `authorization` is sent as that metadata
  // and must pass IsValidMetadataValue.
  static std::shared_ptr<UpstreamStream> Start(UpstreamPool* pool,
                                               const std::string& authorization,
                                               Events events);

  UpstreamStream(const UpstreamStream&) = delete;
  UpstreamStream& operator=(const UpstreamStream&) = delete;
  ~UpstreamStream() override;

  // SubscribeLink.
  size_t Write(v1::SubscribeRequest request) override;
  void ReadNext() override;
  void Cancel() override;

  // The factory of the standalone gateway: every link a call on `pool`.
  static SubscribeLinkFactory Factory(UpstreamPool* pool);

 private:
  UpstreamStream(UpstreamPool* pool, Events events);

  void OnReadDone(bool ok) override;
  void OnWriteDone(bool ok) override;
  void OnDone(const grpc::Status& status) override;

  // Releases the hold once neither a read nor a write needs it.
  void MaybeReleaseHoldLocked(bool* release) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  UpstreamPool* const pool_;
  Events events_;  // moved out in OnDone
  size_t slot_ = 0;
  grpc::ClientContext context_;
  v1::SubscribeResponse response_;
  // Keeps the object alive until OnDone.
  std::shared_ptr<UpstreamStream> self_;

  absl::Mutex mu_;
  std::deque<v1::SubscribeRequest> queued_ ABSL_GUARDED_BY(mu_);
  v1::SubscribeRequest in_flight_;  // touched only while write_in_flight_
  bool write_in_flight_ ABSL_GUARDED_BY(mu_) = false;
  bool read_in_flight_ ABSL_GUARDED_BY(mu_) = false;
  bool ending_ ABSL_GUARDED_BY(mu_) = false;
  bool hold_released_ ABSL_GUARDED_BY(mu_) = false;
};

}  // namespace gateway
}  // namespace entitysync

#endif  // ENTITYSYNC_ADAPTERS_GATEWAY_UPSTREAM_H_
