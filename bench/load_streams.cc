#include "bench/load_streams.h"

#include <algorithm>
#include <cstdio>
#include <optional>
#include <utility>

#include "absl/time/clock.h"
#include "bench/direct_target.h"
#include "bench/subscribe_response_reader.h"
#include "common/metadata.h"
#include "entitysync/v1/entitysync.pb.h"
#include "grpcpp/create_channel.h"
#include "grpcpp/impl/codegen/proto_utils.h"
#include "grpcpp/security/credentials.h"
#include "grpcpp/support/channel_arguments.h"

namespace entitysync {
namespace bench {
namespace {

constexpr char kSubscribeMethod[] = "/entitysync.v1.EntitySync/Subscribe";

// Enough examples to diagnose a run without flooding stderr when thousands
// of streams fail the same way.
bool ShouldLog(std::atomic<int>& logged) {
  return logged.fetch_add(1, std::memory_order_relaxed) < 10;
}
std::atomic<int> logged_errors{0};
std::atomic<int> logged_stream_ends{0};
std::atomic<int> logged_malformed{0};

}  // namespace

void DeliveryRecorder::SetWindow(absl::Time start, absl::Time end) {
  window_start_ns_.store(absl::ToUnixNanos(start), std::memory_order_relaxed);
  window_end_ns_.store(absl::ToUnixNanos(end), std::memory_order_relaxed);
}

DeliveryRecorder::DeliveryRecorder() {
  static std::atomic<uint64_t> next_id{1};
  id_ = next_id.fetch_add(1, std::memory_order_relaxed);
}

DeliveryRecorder::Shard* DeliveryRecorder::LocalShard() {
  // Keyed by id, not address: a recorder may reuse a destroyed one's
  // address (in tests), and the thread's shard then belongs to neither. A
  // thread alternating between recorders gets a new shard at each switch,
  // which Collect still merges.
  thread_local uint64_t owner = 0;
  thread_local Shard* shard = nullptr;
  if (owner != id_) {
    auto fresh = std::make_unique<Shard>();
    shard = fresh.get();
    owner = id_;
    absl::MutexLock lock(&mu_);
    shards_.push_back(std::move(fresh));
  }
  return shard;
}

void DeliveryRecorder::OnUpdate(int64_t now_ns, bool newer,
                                const RowStamp& stamp, bool has_stamp,
                                uint64_t skipped) {
  const int64_t start = window_start_ns_.load(std::memory_order_relaxed);
  const int64_t end = window_end_ns_.load(std::memory_order_relaxed);
  const bool delivery = now_ns >= start && now_ns < end;
  const bool measured = newer && has_stamp && stamp.notify_time_ns != 0 &&
                        stamp.notify_time_ns >= start &&
                        stamp.notify_time_ns < end;
  if (!delivery && !measured) return;
  Shard* shard = LocalShard();
  absl::MutexLock lock(&shard->mu);
  if (delivery) ++shard->totals.deliveries;
  if (measured) {
    shard->totals.latency.Record(
        static_cast<double>(now_ns - stamp.notify_time_ns) / 1e3);
    shard->totals.superseded += static_cast<int64_t>(skipped);
  }
}

DeliveryRecorder::Totals DeliveryRecorder::Collect() const {
  Totals all;
  absl::MutexLock lock(&mu_);
  for (const auto& shard : shards_) {
    absl::MutexLock shard_lock(&shard->mu);
    all.latency.Merge(shard->totals.latency);
    all.deliveries += shard->totals.deliveries;
    all.superseded += shard->totals.superseded;
  }
  return all;
}

SubscriptionBook::SubscriptionBook(const StreamEnvironment* env, uint64_t index,
                                   bool initial, bool stalled)
    : env_(env), index_(index), initial_(initial), stalled_(stalled) {
  for (uint64_t key : env_->keys->KeysOfStream(index, env_->keys_per_stream)) {
    subscriptions_.push_back(Subscription{key});
  }
  unsettled_ = subscriptions_.size();
}

v1::SubscribeRequest SubscriptionBook::SubscribeRequest(size_t i) const {
  v1::SubscribeRequest request;
  request.set_request_id(i + 1);
  v1::EntityKey* key = request.mutable_subscribe()->mutable_key();
  key->set_entity(env_->entity);
  key->set_id(env_->keys->Id(subscriptions_[i].key));
  return request;
}

LoadStream::LoadStream(const StreamEnvironment* env, LoadConnection* owner,
                       uint64_t index, bool initial, bool stalled)
    : env_(env),
      owner_(owner),
      stalled_(stalled),
      book_(env, index, initial, stalled) {}

void LoadStream::Start(grpc::GenericStub* stub) {
  if (!env_->credentials.empty()) {
    context_.AddMetadata("authorization", env_->credentials);
  }
  if (env_->batch) context_.AddMetadata(kBatchMetadata, "1");
  stub->PrepareBidiStreamingCall(&context_, kSubscribeMethod,
                                 grpc::StubOptions(), this);
  if (stalled_) {
    hold_released_.store(false, std::memory_order_relaxed);
    AddHold();
  }
  StartRead(&read_buffer_);
  WriteSubscribe(0);
  StartCall();
}

void LoadStream::ReleaseHold() {
  if (!hold_released_.exchange(true, std::memory_order_acq_rel)) RemoveHold();
}

void LoadStream::Cancel() {
  cancelled_.store(true, std::memory_order_relaxed);
  context_.TryCancel();
  ReleaseHold();
}

void LoadStream::Resume() {
  // The hold keeps the call alive until it is released below.
  if (read_state_.exchange(kResumed, std::memory_order_acq_rel) == kPaused) {
    StartRead(&read_buffer_);
  }
  ReleaseHold();
}

void LoadStream::WriteSubscribe(size_t i) {
  next_write_ = i;
  const v1::SubscribeRequest request = book_.SubscribeRequest(i);
  bool own_buffer;
  // Serializing a small valid message into a fresh buffer cannot fail.
  (void)grpc::SerializationTraits<v1::SubscribeRequest>::Serialize(
      request, &write_buffer_, &own_buffer);
  StartWrite(&write_buffer_);
}

void LoadStream::OnWriteDone(bool ok) {
  // Not ok: the call is over; OnDone reports it.
  if (ok && next_write_ + 1 < book_.size()) {
    WriteSubscribe(next_write_ + 1);
  }
}

void LoadStream::OnReadDone(bool ok) {
  if (!ok) {
    // The call is over: no read will follow, so the hold may go.
    ReleaseHold();
    return;
  }
  const bool keep_reading = book_.HandleResponses(&read_buffer_);
  read_buffer_.Clear();
  if (!keep_reading) {
    int reading = kReading;
    if (read_state_.compare_exchange_strong(reading, kPaused,
                                            std::memory_order_acq_rel)) {
      return;
    }
    // Resumed meanwhile: read on.
  }
  StartRead(&read_buffer_);
}

SubscriptionBook::Subscription* SubscriptionBook::Find(uint64_t key) {
  // A stream has a few keys; a scan beats hashing at that size.
  for (Subscription& sub : subscriptions_) {
    if (sub.key == key) return &sub;
  }
  return nullptr;
}

void SubscriptionBook::SubscriptionSettled(bool ok) {
  if (!ok) ++failed_;
  if (initial_) {
    env_->counters->settled_subscriptions.fetch_add(1,
                                                    std::memory_order_relaxed);
  }
  if (--unsettled_ != 0) return;
  ready_ = true;
  if (initial_) {
    env_->counters->subscriptions.fetch_add(
        static_cast<int64_t>(subscriptions_.size() - failed_),
        std::memory_order_relaxed);
    env_->counters->ready.fetch_add(1, std::memory_order_relaxed);
  }
  if (stalled_ && initial_) {
    env_->counters->stalled.fetch_add(1, std::memory_order_relaxed);
  }
}

bool SubscriptionBook::HandleResponses(grpc::ByteBuffer* buffer) {
  // Per thread, so its strings keep their capacity across deliveries.
  thread_local SubscribeResponseView view;
  StreamCounters& counters = *env_->counters;
  bool keep_reading = true;
  if (!ReadSubscribeResponses(buffer, &view,
                              [&](const SubscribeResponseView& one) {
                                keep_reading &= HandleOne(one);
                              })) {
    counters.malformed.fetch_add(1, std::memory_order_relaxed);
    if (ShouldLog(logged_malformed)) {
      std::fprintf(stderr, "stream %llu: malformed SubscribeResponse\n",
                   static_cast<unsigned long long>(index_));
    }
  }
  return keep_reading;
}

bool SubscriptionBook::HandleOne(const SubscribeResponseView& view) {
  StreamCounters& counters = *env_->counters;
  switch (view.kind) {
    case SubscribeResponseView::Kind::kUpdate: {
      const std::optional<uint64_t> key = env_->keys->Index(view.id);
      Subscription* sub = key ? Find(*key) : nullptr;
      if (sub == nullptr) {
        counters.unknown_keys.fetch_add(1, std::memory_order_relaxed);
        return true;
      }
      // The row's version is the resolver's, the one the notifier set; the
      // Update's is the same unless the server chose its own.
      const uint64_t version =
          view.has_stamp ? view.stamp.version : view.version;
      if (!sub->snapshot) {
        sub->snapshot = true;
        sub->last_version = version;
        SubscriptionSettled(true);
        return !(ready_ && stalled_);
      }
      const bool newer = version > sub->last_version;
      if (ready_ && !stalled_) {
        env_->recorder->OnUpdate(absl::GetCurrentTimeNanos(), newer, view.stamp,
                                 view.has_stamp,
                                 newer ? version - sub->last_version - 1 : 0);
      }
      if (newer) sub->last_version = version;
      return true;
    }
    case SubscribeResponseView::Kind::kError: {
      counters.subscribe_errors.fetch_add(1, std::memory_order_relaxed);
      if (ShouldLog(logged_errors)) {
        std::fprintf(stderr, "stream %llu: error %d for id '%s': %s\n",
                     static_cast<unsigned long long>(index_), view.error_code,
                     view.id.c_str(), view.error_message.c_str());
      }
      const std::optional<uint64_t> key = env_->keys->Index(view.id);
      Subscription* sub = key ? Find(*key) : nullptr;
      if (sub != nullptr && !sub->snapshot) {
        sub->snapshot = true;  // settled: no snapshot is coming
        SubscriptionSettled(false);
        return !(ready_ && stalled_);
      }
      return true;
    }
    case SubscribeResponseView::Kind::kStale:
      counters.stale.fetch_add(1, std::memory_order_relaxed);
      return true;
    case SubscribeResponseView::Kind::kGoAway:
      counters.goaway.fetch_add(1, std::memory_order_relaxed);
      return true;
    case SubscribeResponseView::Kind::kSubscribed:
    case SubscribeResponseView::Kind::kOther:
      return true;
  }
  return true;
}

void SubscriptionBook::OnEnd(bool cancelled, int code,
                             const std::string& message) {
  StreamCounters& counters = *env_->counters;
  if (!ready_ && initial_) {
    counters.failed_before_ready.fetch_add(1, std::memory_order_relaxed);
    counters.settled_subscriptions.fetch_add(static_cast<int64_t>(unsettled_),
                                             std::memory_order_relaxed);
  }
  if (cancelled) return;
  if (ready_ && stalled_) {
    counters.stalled_closed.fetch_add(1, std::memory_order_relaxed);
  } else {
    counters.stream_errors.fetch_add(1, std::memory_order_relaxed);
  }
  if (ShouldLog(logged_stream_ends)) {
    std::fprintf(stderr, "stream %llu ended%s: code %d: %s\n",
                 static_cast<unsigned long long>(index_),
                 ready_ && stalled_ ? " (stalled)" : "", code, message.c_str());
  }
}

void LoadStream::OnDone(const grpc::Status& status) {
  book_.OnEnd(cancelled_.load(std::memory_order_relaxed),
              static_cast<int>(status.error_code()), status.error_message());
  // Last: the connection may destroy this stream as soon as it sees 0.
  owner_->live_.fetch_sub(1, std::memory_order_release);
}

LoadConnection::LoadConnection(const StreamEnvironment* env,
                               const std::string& target, uint64_t index,
                               uint64_t streams, bool initial,
                               const std::function<bool(uint64_t)>& stalled) {
  grpc::ChannelArguments args;
  // Channels to one target otherwise share one subchannel, i.e. one TCP
  // connection, process-wide.
  args.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);
  for (const auto& [name, value] : env->channel_args) args.SetInt(name, value);
  channel_ = grpc::CreateCustomChannel(
      DirectTarget(target), grpc::InsecureChannelCredentials(), args);
  stub_ = std::make_unique<grpc::GenericStub>(channel_);
  for (uint64_t s = 0; s < streams; ++s) {
    const uint64_t g = index * streams + s;
    streams_.push_back(
        std::make_unique<LoadStream>(env, this, g, initial, stalled(g)));
    subscriptions_ += streams_.back()->subscriptions();
  }
  live_.store(static_cast<int64_t>(streams_.size()));
}

LoadConnection::~LoadConnection() = default;

void LoadConnection::Start() {
  for (auto& stream : streams_) stream->Start(stub_.get());
}

void LoadConnection::Cancel() {
  for (auto& stream : streams_) stream->Cancel();
}

void LoadConnection::ResumeStalled() {
  for (auto& stream : streams_) stream->Resume();
}

}  // namespace bench
}  // namespace entitysync
