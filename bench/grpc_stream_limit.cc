// Calibration: how many server-streamed messages per second raw gRPC moves
// on this machine, with no entitysync logic, as the ceilings to compare the
// replicas' fan-out with. Two patterns (--pattern, on both roles):
//
// stream (the default): every call writes one pre-serialized message of
// --message_bytes again and again, as fast as flow control allows (the next
// write starts in OnWriteDone), so chttp2 packs many messages per sendmsg.
// The client prints
//   RESULT {"messages_per_second":x,"streams":n,"connections":c,
//           "message_bytes":b,"client_cpu_seconds":x,"failed_streams":n}
// over --duration after --warmup; client_cpu_seconds is this process's CPU
// time in that window.
//
// fanout: the fan-out of one key, with no entitysync logic. A ticker thread
// makes --rate changes per second on an open-loop schedule (change k is due
// at t0 + k / rate; late changes go out at once, back to back) and hands one
// pre-serialized message of --message_bytes, starting with a RowStamp (k,
// due time), to every open call. Each call has at most one write in flight
// and keeps only the newest message pending (conflation, like a replica's
// outbound queue for one key). The client waits until every stream has had
// a message, then measures as bench/loadgen does (DeliveryRecorder):
// messages received in the window, latency = receive time - due time for
// changes due in the window (after --drain for late ones), and versions
// skipped by conflation as `superseded`. It prints `window_start` and
// `window_end` lines (so that the runner can read the server's CPU over the
// window) and
//   RESULT {"pattern":"fanout","messages_per_second":x,"deliveries":n,
//           "superseded":n,"latency_us":{...},"rate":r,"streams":n,
//           "connections":c,"message_bytes":b,"duration_seconds":x,
//           "client_cpu_seconds":x,"failed_streams":n}
//
// --role=server prints `port=<N>` and serves until SIGINT/SIGTERM. The
// client may spread its connections over several servers (--target=a,b),
// as the fan-out scenario spreads subscribers over two replicas.
// Thread-safe as a program; not a library.
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <cstdio>
#include <functional>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_set.h"
#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "bench/cq_fanout_server.h"
#include "bench/direct_target.h"
#include "bench/json.h"
#include "bench/load_streams.h"
#include "bench/process_stats.h"
#include "bench/row_stamp.h"
#include "bench/stop_signal.h"
#include "grpcpp/create_channel.h"
#include "grpcpp/generic/async_generic_service.h"
#include "grpcpp/generic/generic_stub.h"
#include "grpcpp/security/credentials.h"
#include "grpcpp/security/server_credentials.h"
#include "grpcpp/server.h"
#include "grpcpp/server_builder.h"
#include "grpcpp/support/channel_arguments.h"
#include "grpcpp/support/client_callback.h"
#include "grpcpp/support/server_callback.h"

ABSL_FLAG(std::string, role, "", "server or client.");
ABSL_FLAG(std::string, pattern, "stream",
          "stream (write back to back) or fanout (--rate changes per second, "
          "one message per stream per change); the same on both roles.");
ABSL_FLAG(std::string, server_api, "callback",
          "server, fanout: callback (the callback API) or cq (completion "
          "queues polled by --io_threads threads of our own, the replica's "
          "design).");
ABSL_FLAG(int, io_threads, 1, "server, --server_api=cq: I/O threads.");
ABSL_FLAG(double, rate, 100,
          "fanout: changes per second (server: the schedule; client: "
          "reported).");
ABSL_FLAG(std::string, address, "127.0.0.1:0", "server: where to listen.");
ABSL_FLAG(int, message_bytes, 150,
          "server: bytes of the message written again and again (150: about "
          "a SubscribeResponse update with a 100-byte row).");
ABSL_FLAG(std::string, target, "",
          "client: the server's address, or several separated by commas "
          "(connection i goes to the (i mod n)-th, like the loadgen's "
          "replicas).");
ABSL_FLAG(int, connections, 1, "client: TCP connections.");
ABSL_FLAG(int, streams, 1, "client: streams over all connections.");
ABSL_FLAG(absl::Duration, duration, absl::Seconds(5), "client: measured.");
ABSL_FLAG(absl::Duration, warmup, absl::Seconds(1), "client: not measured.");
ABSL_FLAG(absl::Duration, drain, absl::Seconds(1),
          "fanout client: wait after the window for changes due in it.");
ABSL_FLAG(absl::Duration, ready_timeout, absl::Seconds(60),
          "fanout client: how long every stream may take to get its first "
          "message.");

namespace entitysync {
namespace bench {
namespace {

constexpr char kMethod[] = "/entitysync.bench.Flood/Flood";

class FloodReactor final : public grpc::ServerGenericBidiReactor {
 public:
  // `message` shares its slices with every other stream's copy.
  explicit FloodReactor(const grpc::ByteBuffer& message) : message_(message) {
    StartWrite(&message_);
  }

 private:
  void OnWriteDone(bool ok) override {
    if (ok) {
      StartWrite(&message_);
    } else {
      // The client went away; no write is in flight now.
      Finish(grpc::Status::OK);
    }
  }
  void OnDone() override { delete this; }

  grpc::ByteBuffer message_;
};

class FloodService final : public grpc::CallbackGenericService {
 public:
  explicit FloodService(size_t message_bytes) {
    const std::string bytes(message_bytes, 'x');
    grpc::Slice slice(bytes);
    message_ = grpc::ByteBuffer(&slice, 1);
  }

 private:
  grpc::ServerGenericBidiReactor* CreateReactor(
      grpc::GenericCallbackServerContext*) override {
    return new FloodReactor(message_);
  }

  grpc::ByteBuffer message_;
};

class FanoutReactor;

// The open calls of the fanout pattern. Thread-safe.
class FanoutRegistry {
 public:
  void Add(FanoutReactor* stream) ABSL_LOCKS_EXCLUDED(mu_);
  void Remove(FanoutReactor* stream) ABSL_LOCKS_EXCLUDED(mu_);
  // Every open call, each with a reference the caller must drop (Unref),
  // so that the calls may be written to after the lock is released.
  std::vector<FanoutReactor*> Snapshot() ABSL_LOCKS_EXCLUDED(mu_);

 private:
  absl::Mutex mu_;
  absl::flat_hash_set<FanoutReactor*> streams_ ABSL_GUARDED_BY(mu_);
};

// One fanout call: at most one write in flight, the newest message pending.
// A read stays in flight to learn when the client goes away. Freed when
// gRPC is done with it and no Snapshot holds it.
class FanoutReactor final : public grpc::ServerGenericBidiReactor {
 public:
  explicit FanoutReactor(FanoutRegistry* registry) : registry_(registry) {
    StartRead(&ignored_);
    registry_->Add(this);
  }

  void Ref() { refs_.fetch_add(1, std::memory_order_relaxed); }
  void Unref() {
    if (refs_.fetch_sub(1, std::memory_order_acq_rel) == 1) delete this;
  }

  // Writes `message` now, or keeps it as the pending one (replacing an
  // older pending message) while a write is in flight.
  void Offer(const grpc::ByteBuffer& message) ABSL_LOCKS_EXCLUDED(mu_) {
    {
      absl::MutexLock lock(&mu_);
      if (closing_) return;
      if (writing_) {
        pending_ = message;
        has_pending_ = true;
        return;
      }
      writing_ = true;
      current_ = message;
    }
    // Outside the lock: a reaction may run inline.
    StartWrite(&current_);
  }

 private:
  void OnWriteDone(bool ok) override ABSL_LOCKS_EXCLUDED(mu_) {
    bool write = false;
    bool finish = false;
    {
      absl::MutexLock lock(&mu_);
      writing_ = false;
      if (!ok) closing_ = true;
      if (closing_) {
        finish = !finished_;
        finished_ = true;
      } else if (has_pending_) {
        current_ = std::move(pending_);
        pending_.Clear();
        has_pending_ = false;
        writing_ = true;
        write = true;
      }
    }
    if (write) StartWrite(&current_);
    if (finish) Finish(grpc::Status::OK);
  }

  void OnReadDone(bool ok) override ABSL_LOCKS_EXCLUDED(mu_) {
    if (ok) {
      // The client sends nothing in this protocol; ignore what it does.
      ignored_.Clear();
      StartRead(&ignored_);
      return;
    }
    // Half-closed or gone: finish once no write is in flight.
    bool finish = false;
    {
      absl::MutexLock lock(&mu_);
      closing_ = true;
      if (!writing_ && !finished_) {
        finished_ = true;
        finish = true;
      }
    }
    if (finish) Finish(grpc::Status::OK);
  }

  void OnDone() override {
    registry_->Remove(this);
    Unref();
  }

  FanoutRegistry* const registry_;
  // gRPC's reference plus one per Snapshot holding this call.
  std::atomic<int> refs_{1};
  grpc::ByteBuffer ignored_;  // Only the read reactions touch it.
  absl::Mutex mu_;
  // Set before Finish; no write starts after it.
  bool closing_ ABSL_GUARDED_BY(mu_) = false;
  bool finished_ ABSL_GUARDED_BY(mu_) = false;
  bool writing_ ABSL_GUARDED_BY(mu_) = false;
  bool has_pending_ ABSL_GUARDED_BY(mu_) = false;
  // Being written while writing_; replaced only when no write is in flight.
  grpc::ByteBuffer current_;
  grpc::ByteBuffer pending_ ABSL_GUARDED_BY(mu_);
};

void FanoutRegistry::Add(FanoutReactor* stream) {
  absl::MutexLock lock(&mu_);
  streams_.insert(stream);
}

void FanoutRegistry::Remove(FanoutReactor* stream) {
  absl::MutexLock lock(&mu_);
  streams_.erase(stream);
}

std::vector<FanoutReactor*> FanoutRegistry::Snapshot() {
  std::vector<FanoutReactor*> out;
  absl::MutexLock lock(&mu_);
  out.reserve(streams_.size());
  for (FanoutReactor* stream : streams_) {
    stream->Ref();
    out.push_back(stream);
  }
  return out;
}

class FanoutService final : public grpc::CallbackGenericService {
 public:
  FanoutRegistry* registry() { return &registry_; }

 private:
  grpc::ServerGenericBidiReactor* CreateReactor(
      grpc::GenericCallbackServerContext*) override {
    return new FanoutReactor(&registry_);
  }

  FanoutRegistry registry_;
};

// The fanout pattern's changes: `rate` per second on an open-loop schedule
// until `stop`, each serialized once and handed to `offer`.
void Tick(double rate, size_t message_bytes,
          const std::function<void(const grpc::ByteBuffer&)>& offer,
          const StopSignal& stop) {
  const absl::Time t0 = absl::Now();
  for (uint64_t k = 1;; ++k) {
    const absl::Time due = t0 + absl::Seconds(static_cast<double>(k) / rate);
    const absl::Time now = absl::Now();
    if (due > now && stop.stopped().WaitForNotificationWithTimeout(due - now)) {
      return;
    }
    if (stop.HasBeenNotified()) return;
    const std::string bytes =
        EncodeRow(RowStamp{k, absl::ToUnixNanos(due)}, message_bytes);
    grpc::Slice slice(bytes);
    offer(grpc::ByteBuffer(&slice, 1));
  }
}

// Offers a change to every open callback call.
void OfferToAll(FanoutRegistry* registry, const grpc::ByteBuffer& message) {
  for (FanoutReactor* stream : registry->Snapshot()) {
    stream->Offer(message);
    stream->Unref();
  }
}

int RunServer(const StopSignal& stop) {
  const int message_bytes = absl::GetFlag(FLAGS_message_bytes);
  const std::string pattern = absl::GetFlag(FLAGS_pattern);
  const double rate = absl::GetFlag(FLAGS_rate);
  if (message_bytes < 0) {
    std::fprintf(stderr, "--message_bytes must be >= 0\n");
    return 2;
  }
  if (pattern == "fanout" &&
      (message_bytes < static_cast<int>(kRowStampBytes) || !(rate > 0))) {
    std::fprintf(stderr,
                 "--pattern=fanout needs --message_bytes >= %d and "
                 "--rate > 0\n",
                 static_cast<int>(kRowStampBytes));
    return 2;
  }
  const std::string api = absl::GetFlag(FLAGS_server_api);
  if (api != "callback" && (api != "cq" || pattern != "fanout")) {
    std::fprintf(stderr,
                 "--server_api is callback, or cq with --pattern=fanout\n");
    return 2;
  }
  FloodService flood(static_cast<size_t>(message_bytes));
  // Leaked: calls may end (OnDone) after the server object is gone.
  auto* fanout = new FanoutService;
  grpc::ServerBuilder builder;
  int port = 0;
  builder.AddListeningPort(absl::GetFlag(FLAGS_address),
                           grpc::InsecureServerCredentials(), &port);
  std::unique_ptr<CqFanoutServer> cq_fanout;
  if (api == "cq") {
    cq_fanout = std::make_unique<CqFanoutServer>(
        &builder, absl::GetFlag(FLAGS_io_threads));
  } else if (pattern == "fanout") {
    builder.RegisterCallbackGenericService(fanout);
  } else {
    builder.RegisterCallbackGenericService(&flood);
  }
  std::unique_ptr<grpc::Server> server = builder.BuildAndStart();
  if (server == nullptr || port == 0) {
    std::fprintf(stderr, "cannot listen on --address=%s\n",
                 absl::GetFlag(FLAGS_address).c_str());
    return 1;
  }
  if (cq_fanout != nullptr) cq_fanout->Start();
  std::printf("port=%d\n", port);
  std::fflush(stdout);
  if (pattern == "fanout") {
    std::function<void(const grpc::ByteBuffer&)> offer;
    if (cq_fanout != nullptr) {
      offer = [&](const grpc::ByteBuffer& m) { cq_fanout->Offer(m); };
    } else {
      offer = [&](const grpc::ByteBuffer& m) {
        OfferToAll(fanout->registry(), m);
      };
    }
    // Returns once stopped; no Snapshot reference outlives it.
    std::thread ticker(Tick, rate, static_cast<size_t>(message_bytes),
                       std::cref(offer), std::cref(stop));
    ticker.join();
  } else {
    stop.stopped().WaitForNotification();
  }
  // Streams never end on their own; cancel them rather than wait.
  server->Shutdown(std::chrono::system_clock::now());
  if (cq_fanout != nullptr) cq_fanout->Shutdown();
  return 0;
}

class CountingStream final
    : public grpc::ClientBidiReactor<grpc::ByteBuffer, grpc::ByteBuffer> {
 public:
  void Start(grpc::GenericStub* stub) {
    stub->PrepareBidiStreamingCall(&context_, kMethod, grpc::StubOptions(),
                                   this);
    StartRead(&buffer_);
    StartCall();
  }
  int64_t received() const { return received_.load(std::memory_order_relaxed); }
  bool failed() const { return failed_.load(std::memory_order_relaxed); }

 private:
  void OnReadDone(bool ok) override {
    if (!ok) return;
    // Written by this stream's reactions only (one at a time); an atomic so
    // the main thread may sample it. No contention: one counter per stream.
    received_.store(received_.load(std::memory_order_relaxed) + 1,
                    std::memory_order_relaxed);
    buffer_.Clear();
    StartRead(&buffer_);
  }
  void OnDone(const grpc::Status& status) override {
    if (!status.ok()) {
      failed_.store(true, std::memory_order_relaxed);
      std::fprintf(stderr, "stream ended: code %d: %s\n",
                   static_cast<int>(status.error_code()),
                   status.error_message().c_str());
    }
  }

  grpc::ClientContext context_;
  grpc::ByteBuffer buffer_;
  std::atomic<int64_t> received_{0};
  std::atomic<bool> failed_{false};
};

// One message received per call; the stamp says which change and when it
// was due. Reactions run one at a time per call.
class FanoutStream final
    : public grpc::ClientBidiReactor<grpc::ByteBuffer, grpc::ByteBuffer> {
 public:
  explicit FanoutStream(DeliveryRecorder* recorder) : recorder_(recorder) {}

  void Start(grpc::GenericStub* stub) {
    stub->PrepareBidiStreamingCall(&context_, kMethod, grpc::StubOptions(),
                                   this);
    StartRead(&buffer_);
    StartCall();
  }
  int64_t received() const { return received_.load(std::memory_order_relaxed); }
  bool failed() const { return failed_.load(std::memory_order_relaxed); }
  int64_t malformed() const {
    return malformed_.load(std::memory_order_relaxed);
  }

 private:
  void OnReadDone(bool ok) override {
    if (!ok) return;
    const int64_t now_ns = absl::GetCurrentTimeNanos();
    grpc::Slice slice;
    if (buffer_.DumpToSingleSlice(&slice).ok() &&
        slice.size() >= kRowStampBytes) {
      const RowStamp stamp = DecodeRowStamp(slice.begin());
      const bool newer = stamp.version > last_version_;
      // Versions this message jumped over were conflated away by the
      // server: superseded, as bench/loadgen counts them.
      const uint64_t skipped =
          newer && last_version_ != 0 ? stamp.version - last_version_ - 1 : 0;
      if (newer) last_version_ = stamp.version;
      recorder_->OnUpdate(now_ns, newer, stamp, /*has_stamp=*/true, skipped);
    } else {
      malformed_.fetch_add(1, std::memory_order_relaxed);
    }
    received_.store(received_.load(std::memory_order_relaxed) + 1,
                    std::memory_order_relaxed);
    buffer_.Clear();
    StartRead(&buffer_);
  }
  void OnDone(const grpc::Status& status) override {
    if (!status.ok()) {
      failed_.store(true, std::memory_order_relaxed);
      std::fprintf(stderr, "stream ended: code %d: %s\n",
                   static_cast<int>(status.error_code()),
                   status.error_message().c_str());
    }
  }

  DeliveryRecorder* const recorder_;
  grpc::ClientContext context_;
  grpc::ByteBuffer buffer_;
  uint64_t last_version_ = 0;  // Only this call's reactions touch it.
  std::atomic<int64_t> received_{0};
  std::atomic<int64_t> malformed_{0};
  std::atomic<bool> failed_{false};
};

// False when stopped early.
bool Sleep(const StopSignal& stop, absl::Duration d) {
  if (d <= absl::ZeroDuration()) return !stop.HasBeenNotified();
  return !stop.stopped().WaitForNotificationWithTimeout(d);
}

int RunFanoutClient(
    const StopSignal& stop,
    const std::vector<std::unique_ptr<grpc::GenericStub>>& stubs, int streams) {
  const int connections = static_cast<int>(stubs.size());
  // Leaked with the process (see the end of main), like the calls.
  auto* recorder = new DeliveryRecorder;
  auto* calls = new std::vector<std::unique_ptr<FanoutStream>>;
  for (int i = 0; i < streams; ++i) {
    calls->push_back(std::make_unique<FanoutStream>(recorder));
    calls->back()->Start(stubs[i % connections].get());
  }
  // The window opens once every call is established and served.
  const absl::Time ready_by = absl::Now() + absl::GetFlag(FLAGS_ready_timeout);
  const absl::Time ready_start = absl::Now();
  int ready = 0;
  while (true) {
    ready = 0;
    for (const auto& call : *calls) ready += call->received() > 0 ? 1 : 0;
    if (ready == streams || absl::Now() >= ready_by) break;
    if (!Sleep(stop, absl::Milliseconds(20))) return 1;
  }
  if (ready < streams) {
    std::fprintf(
        stderr, "only %d of %d streams had a message within %s\n", ready,
        streams,
        absl::FormatDuration(absl::GetFlag(FLAGS_ready_timeout)).c_str());
    return 1;
  }
  std::fprintf(stderr, "%d streams ready in %s\n", streams,
               absl::FormatDuration(absl::Now() - ready_start).c_str());
  const absl::Time start = absl::Now() + absl::GetFlag(FLAGS_warmup);
  const absl::Time end = start + absl::GetFlag(FLAGS_duration);
  recorder->SetWindow(start, end);
  if (!Sleep(stop, start - absl::Now())) return 1;
  std::printf("window_start\n");
  std::fflush(stdout);
  const double cpu_before = ProcessCpuSeconds();
  const bool whole = Sleep(stop, end - absl::Now());
  const double cpu = ProcessCpuSeconds() - cpu_before;
  const double seconds =
      absl::ToDoubleSeconds(std::min(absl::Now(), end) - start);
  std::printf("window_end\n");
  std::fflush(stdout);
  if (whole) Sleep(stop, absl::GetFlag(FLAGS_drain));
  const DeliveryRecorder::Totals totals = recorder->Collect();
  int failed = 0;
  int64_t malformed = 0;
  for (const auto& call : *calls) {
    failed += call->failed() ? 1 : 0;
    malformed += call->malformed();
  }
  if (failed > 0) std::fprintf(stderr, "%d streams failed\n", failed);
  std::printf(
      "RESULT %s\n",
      absl::StrCat(
          "{\"pattern\":\"fanout\",\"messages_per_second\":",
          JsonNumber(seconds > 0
                         ? static_cast<double>(totals.deliveries) / seconds
                         : 0.0,
                     1),
          ",\"deliveries\":", totals.deliveries, ",\"superseded\":",
          totals.superseded, ",\"latency_us\":", totals.latency.ToJson(),
          ",\"rate\":", JsonNumber(absl::GetFlag(FLAGS_rate)),
          ",\"streams\":", streams, ",\"connections\":", connections,
          ",\"message_bytes\":", absl::GetFlag(FLAGS_message_bytes),
          ",\"duration_seconds\":", JsonNumber(seconds),
          ",\"client_cpu_seconds\":", JsonNumber(cpu),
          ",\"failed_streams\":", failed, ",\"malformed\":", malformed, "}")
          .c_str());
  return 0;
}

int RunStreamClient(
    const StopSignal& stop,
    const std::vector<std::unique_ptr<grpc::GenericStub>>& stubs, int streams) {
  const int connections = static_cast<int>(stubs.size());
  // Leaked with the process (see the end of main).
  auto* calls = new std::vector<std::unique_ptr<CountingStream>>;
  for (int i = 0; i < streams; ++i) {
    calls->push_back(std::make_unique<CountingStream>());
    calls->back()->Start(stubs[i % connections].get());
  }
  auto total = [&] {
    int64_t sum = 0;
    for (const auto& call : *calls) sum += call->received();
    return sum;
  };
  if (stop.stopped().WaitForNotificationWithTimeout(
          absl::GetFlag(FLAGS_warmup))) {
    return 1;
  }
  const int64_t before = total();
  const double cpu_before = ProcessCpuSeconds();
  const absl::Time start = absl::Now();
  stop.stopped().WaitForNotificationWithTimeout(absl::GetFlag(FLAGS_duration));
  const int64_t after = total();
  const double cpu = ProcessCpuSeconds() - cpu_before;
  const double seconds = absl::ToDoubleSeconds(absl::Now() - start);
  int failed = 0;
  for (const auto& call : *calls) failed += call->failed() ? 1 : 0;
  if (failed > 0) std::fprintf(stderr, "%d streams failed\n", failed);
  std::printf(
      "RESULT %s\n",
      absl::StrCat("{\"messages_per_second\":",
                   JsonNumber(static_cast<double>(after - before) / seconds, 1),
                   ",\"streams\":", streams, ",\"connections\":", connections,
                   ",\"message_bytes\":", absl::GetFlag(FLAGS_message_bytes),
                   ",\"client_cpu_seconds\":", JsonNumber(cpu),
                   ",\"failed_streams\":", failed, "}")
          .c_str());
  return 0;
}

int RunClient(const StopSignal& stop) {
  const std::vector<std::string> targets =
      absl::StrSplit(absl::GetFlag(FLAGS_target), ',', absl::SkipEmpty());
  const int connections = absl::GetFlag(FLAGS_connections);
  const int streams = absl::GetFlag(FLAGS_streams);
  if (targets.empty() || connections < 1 || streams < 1) {
    std::fprintf(stderr,
                 "--role=client needs --target, --connections >= 1 and "
                 "--streams >= 1\n");
    return 2;
  }
  absl::StatusOr<uint64_t> fds = RaiseFdLimit();
  if (fds.ok() && static_cast<uint64_t>(connections) + 64 > *fds) {
    std::fprintf(stderr,
                 "--connections=%d needs about %d file descriptors; the limit "
                 "is %llu (ulimit -Hn)\n",
                 connections, connections + 64,
                 static_cast<unsigned long long>(*fds));
    return 2;
  }
  // Leaked with the process (see the end of main), like the calls.
  auto* channels = new std::vector<std::shared_ptr<grpc::Channel>>;
  auto* stubs = new std::vector<std::unique_ptr<grpc::GenericStub>>;
  for (int c = 0; c < connections; ++c) {
    grpc::ChannelArguments args;
    // One TCP connection per channel.
    args.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);
    channels->push_back(
        grpc::CreateCustomChannel(DirectTarget(targets[c % targets.size()]),
                                  grpc::InsecureChannelCredentials(), args));
    stubs->push_back(std::make_unique<grpc::GenericStub>(channels->back()));
  }
  if (absl::GetFlag(FLAGS_pattern) == "fanout") {
    return RunFanoutClient(stop, *stubs, streams);
  }
  return RunStreamClient(stop, *stubs, streams);
}

}  // namespace
}  // namespace bench
}  // namespace entitysync

int main(int argc, char** argv) {
  // First, so that every thread (gRPC's too) inherits the blocked signals.
  static const auto* stop = new entitysync::bench::StopSignal;
  // Debian builds Abseil without NDEBUG, which turns on deadlock detection:
  // every absl::Mutex lock (gRPC's included) records a stack trace into a
  // global graph, a measurable share of the client's CPU.
  absl::SetMutexDeadlockDetectionMode(absl::OnDeadlockCycle::kIgnore);
  absl::ParseCommandLine(argc, argv);
  const std::string role = absl::GetFlag(FLAGS_role);
  const std::string pattern = absl::GetFlag(FLAGS_pattern);
  int code;
  if (pattern != "stream" && pattern != "fanout") {
    std::fprintf(stderr, "--pattern must be stream or fanout\n");
    code = 2;
  } else if (role == "server") {
    code = entitysync::bench::RunServer(*stop);
  } else if (role == "client") {
    code = entitysync::bench::RunClient(*stop);
  } else {
    std::fprintf(stderr, "--role must be server or client\n");
    code = 2;
  }
  std::fflush(stdout);
  std::fflush(stderr);
  // The client's streams never end; skip tearing them down.
  _exit(code);
}
