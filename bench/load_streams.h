// The load generator's client side: LoadConnection is one gRPC channel (its
// own TCP connection) carrying S Subscribe streams; LoadStream is one of
// them, a raw-ByteBuffer bidi reactor that subscribes to its keys, waits
// for their snapshots and then measures every update it gets.
//
// Per delivery a stream reads the wire bytes in place
// (subscribe_response_reader.h), looks its key up among its own few
// subscriptions and records into a per-thread shard of DeliveryRecorder:
// no allocation and no shared lock.
//
// Ownership: LoadConnection owns its channel and streams. Streams report
// OnDone to their connection; a connection may be destroyed once Done(),
// and only off gRPC's threads (destroying the last channel there would join
// gRPC's own threads).
//
// Thread-safety: counters are atomics; DeliveryRecorder is thread-safe;
// LoadConnection's methods are called from one control thread.
#ifndef ENTITYSYNC_BENCH_LOAD_STREAMS_H_
#define ENTITYSYNC_BENCH_LOAD_STREAMS_H_

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "bench/histogram.h"
#include "bench/key_space.h"
#include "bench/row_stamp.h"
#include "bench/subscribe_response_reader.h"
#include "entitysync/v1/entitysync.pb.h"
#include "grpcpp/channel.h"
#include "grpcpp/client_context.h"
#include "grpcpp/generic/generic_stub.h"
#include "grpcpp/support/byte_buffer.h"
#include "grpcpp/support/client_callback.h"

namespace entitysync {
namespace bench {

// What happened to the streams, for the RESULT line. "Initial" streams are
// the ones opened before READY; churn replaces them with new ones.
struct StreamCounters {
  std::atomic<int64_t> ready{0};  // initial streams with every snapshot in
  std::atomic<int64_t> failed_before_ready{0};  // initial streams
  std::atomic<int64_t> subscriptions{0};        // of ready initial streams
  // Of initial streams: snapshot in, refused, or the stream ended first.
  std::atomic<int64_t> settled_subscriptions{0};
  std::atomic<int64_t> subscribe_errors{0};
  // Reading streams that ended without being cancelled by us.
  std::atomic<int64_t> stream_errors{0};
  std::atomic<int64_t> stalled{0};  // initial streams that stopped reading
  // ... and were found ended by the server once resumed at the end.
  std::atomic<int64_t> stalled_closed{0};
  std::atomic<int64_t> stale{0};
  std::atomic<int64_t> goaway{0};
  std::atomic<int64_t> malformed{0};
  std::atomic<int64_t> unknown_keys{0};
};

// Latency samples and delivery counts inside the measurement window, kept
// in one shard per thread so that concurrent reactions never share a lock.
class DeliveryRecorder {
 public:
  DeliveryRecorder();

  struct Totals {
    Histogram latency;
    int64_t deliveries = 0;
    int64_t superseded = 0;
  };

  // Deliveries received in [start, end) are counted; changes whose intended
  // notify time is in [start, end) are measured, whenever they arrive.
  // Before this is called nothing is counted.
  void SetWindow(absl::Time start, absl::Time end);

  // One update, after its key's snapshot, on a ready stream that reads.
  // `newer`: its version is above the stream's last one for the key;
  // `skipped`: versions it jumped over.
  void OnUpdate(int64_t now_ns, bool newer, const RowStamp& stamp,
                bool has_stamp, uint64_t skipped);

  Totals Collect() const;

 private:
  struct Shard {
    absl::Mutex mu;
    Totals totals ABSL_GUARDED_BY(mu);
  };
  Shard* LocalShard();

  // Const after construction; unique in the process.
  uint64_t id_;
  std::atomic<int64_t> window_start_ns_{INT64_MAX};
  std::atomic<int64_t> window_end_ns_{INT64_MAX};
  mutable absl::Mutex mu_;
  std::vector<std::unique_ptr<Shard>> shards_ ABSL_GUARDED_BY(mu_);
};

// Const after construction; shared by every stream.
struct StreamEnvironment {
  std::string entity;
  const KeySpace* keys = nullptr;
  uint64_t keys_per_stream = 1;
  StreamCounters* counters = nullptr;
  DeliveryRecorder* recorder = nullptr;
  // Extra integer arguments for every connection's channel.
  std::vector<std::pair<std::string, int>> channel_args;
  // Sent as every stream's `authorization` metadata when not empty.
  std::string credentials;
  // Asks for SubscribeResponse.batch, as the C++ client does.
  bool batch = true;
};

// The subscriptions of one stream and what its responses do to them: the
// part a gRPC LoadStream and a WebSocket stream (ws_load.h) share.
// Thread-compatible: used by the one read in flight of its stream.
class SubscriptionBook {
 public:
  // `initial`: counts toward READY. `stalled`: stops reading once ready.
  SubscriptionBook(const StreamEnvironment* env, uint64_t index, bool initial,
                   bool stalled);

  size_t size() const { return subscriptions_.size(); }
  bool ready() const { return ready_; }
  bool stalled() const { return stalled_; }
  // The subscribe of subscription i (request id i + 1).
  v1::SubscribeRequest SubscribeRequest(size_t i) const;
  // Every response `buffer` carries (one, or a batch's). Returns whether to
  // keep reading.
  bool HandleResponses(grpc::ByteBuffer* buffer);
  // The stream ended, `cancelled` by us or else with this status.
  void OnEnd(bool cancelled, int code, const std::string& message);

 private:
  struct Subscription {
    uint64_t key;
    uint64_t last_version = 0;
    bool snapshot = false;
  };

  bool HandleOne(const SubscribeResponseView& view);
  void SubscriptionSettled(bool ok);
  Subscription* Find(uint64_t key);

  const StreamEnvironment* const env_;
  const uint64_t index_;
  const bool initial_;
  const bool stalled_;
  std::vector<Subscription> subscriptions_;
  size_t unsettled_ = 0;
  size_t failed_ = 0;
  bool ready_ = false;
};

class LoadConnection;

class LoadStream final
    : public grpc::ClientBidiReactor<grpc::ByteBuffer, grpc::ByteBuffer> {
 public:
  // `initial`: counts toward READY. `stalled`: stops reading once ready.
  LoadStream(const StreamEnvironment* env, LoadConnection* owner,
             uint64_t index, bool initial, bool stalled);

  void Start(grpc::GenericStub* stub);
  // Ends the call; it is then not counted as an error. Any thread.
  void Cancel();
  size_t subscriptions() const { return book_.size(); }
  // A stalled stream reads again (without measuring), so that it learns
  // whether the server has closed it: gRPC reports the end of a call to a
  // client only once it has read what arrived before. Any thread.
  void Resume();

 private:
  void OnReadDone(bool ok) override;
  void OnWriteDone(bool ok) override;
  void OnDone(const grpc::Status& status) override;

  enum ReadState { kReading, kPaused, kResumed };

  void WriteSubscribe(size_t i);
  void ReleaseHold();

  // Const after construction.
  const StreamEnvironment* const env_;
  LoadConnection* const owner_;
  const bool stalled_;

  grpc::ClientContext context_;
  std::atomic<bool> cancelled_{false};
  // A stalled stream pauses reading from a reaction and is resumed from
  // outside one, which needs a hold; released exactly once.
  std::atomic<bool> hold_released_{true};
  std::atomic<int> read_state_{kReading};

  // Owned by the one read in flight (its reactions run one at a time).
  grpc::ByteBuffer read_buffer_;
  SubscriptionBook book_;

  // Owned by the one write in flight.
  grpc::ByteBuffer write_buffer_;
  size_t next_write_ = 0;
};

// One connection of the load: gRPC (LoadConnection) or WebSocket
// (ws_load.h). Methods are called from one control thread.
class Connection {
 public:
  virtual ~Connection() = default;
  virtual void Start() = 0;
  virtual void Cancel() = 0;
  virtual void ResumeStalled() = 0;
  // Subscriptions over all its streams.
  virtual uint64_t subscriptions() const = 0;
  // Every stream has ended; the connection may be destroyed.
  virtual bool Done() const = 0;
};

class LoadConnection final : public Connection {
 public:
  // Streams index*streams .. index*streams+streams-1 (global indices) on a
  // new channel to `target`; stream g stalls when stalled(g).
  LoadConnection(const StreamEnvironment* env, const std::string& target,
                 uint64_t index, uint64_t streams, bool initial,
                 const std::function<bool(uint64_t)>& stalled);
  ~LoadConnection() override;

  void Start() override;
  void Cancel() override;
  void ResumeStalled() override;
  uint64_t subscriptions() const override { return subscriptions_; }
  // Every stream has had OnDone.
  bool Done() const override {
    return live_.load(std::memory_order_acquire) == 0;
  }

 private:
  friend class LoadStream;

  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<grpc::GenericStub> stub_;
  std::vector<std::unique_ptr<LoadStream>> streams_;
  uint64_t subscriptions_ = 0;
  std::atomic<int64_t> live_{0};
};

}  // namespace bench
}  // namespace entitysync

#endif  // ENTITYSYNC_BENCH_LOAD_STREAMS_H_
