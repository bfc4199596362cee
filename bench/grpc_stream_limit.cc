// Calibration: how many server-streamed messages per second raw gRPC moves
// on this machine, with no entitysync logic, as the ceiling to compare the
// replicas' fan-out with.
//
// --role=server: a generic (ByteBuffer) service whose every call writes one
// pre-serialized message of --message_bytes again and again, as fast as
// flow control allows (the next write starts in OnWriteDone). Prints
// `port=<N>` and serves until SIGINT/SIGTERM.
//
// --role=client: opens --streams calls over --connections TCP connections
// (stream i on connection i % C), reads everything and prints
//   RESULT {"messages_per_second":x,"streams":n,"connections":c,
//           "message_bytes":b,"client_cpu_seconds":x}
// where both rates are over --duration after --warmup, and
// client_cpu_seconds is this process's CPU time in that window.
#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <memory>
#include <string>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "bench/direct_target.h"
#include "bench/json.h"
#include "bench/process_stats.h"
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
ABSL_FLAG(std::string, address, "127.0.0.1:0", "server: where to listen.");
ABSL_FLAG(int, message_bytes, 150,
          "server: bytes of the message written again and again (150: about "
          "a SubscribeResponse update with a 100-byte row).");
ABSL_FLAG(std::string, target, "", "client: the server's address.");
ABSL_FLAG(int, connections, 1, "client: TCP connections.");
ABSL_FLAG(int, streams, 1, "client: streams over all connections.");
ABSL_FLAG(absl::Duration, duration, absl::Seconds(5), "client: measured.");
ABSL_FLAG(absl::Duration, warmup, absl::Seconds(1), "client: not measured.");

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

int RunServer(const StopSignal& stop) {
  const int message_bytes = absl::GetFlag(FLAGS_message_bytes);
  if (message_bytes < 0) {
    std::fprintf(stderr, "--message_bytes must be >= 0\n");
    return 2;
  }
  FloodService service(static_cast<size_t>(message_bytes));
  grpc::ServerBuilder builder;
  int port = 0;
  builder.AddListeningPort(absl::GetFlag(FLAGS_address),
                           grpc::InsecureServerCredentials(), &port);
  builder.RegisterCallbackGenericService(&service);
  std::unique_ptr<grpc::Server> server = builder.BuildAndStart();
  if (server == nullptr || port == 0) {
    std::fprintf(stderr, "cannot listen on --address=%s\n",
                 absl::GetFlag(FLAGS_address).c_str());
    return 1;
  }
  std::printf("port=%d\n", port);
  std::fflush(stdout);
  stop.stopped().WaitForNotification();
  // Streams never end on their own; cancel them rather than wait.
  server->Shutdown(std::chrono::system_clock::now());
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

int RunClient(const StopSignal& stop) {
  const std::string target = absl::GetFlag(FLAGS_target);
  const int connections = absl::GetFlag(FLAGS_connections);
  const int streams = absl::GetFlag(FLAGS_streams);
  if (target.empty() || connections < 1 || streams < 1) {
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
  std::vector<std::shared_ptr<grpc::Channel>> channels;
  std::vector<std::unique_ptr<grpc::GenericStub>> stubs;
  for (int c = 0; c < connections; ++c) {
    grpc::ChannelArguments args;
    // One TCP connection per channel.
    args.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);
    channels.push_back(grpc::CreateCustomChannel(
        DirectTarget(target), grpc::InsecureChannelCredentials(), args));
    stubs.push_back(std::make_unique<grpc::GenericStub>(channels.back()));
  }
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
  int code;
  if (role == "server") {
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
