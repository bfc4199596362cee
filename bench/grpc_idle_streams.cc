// Calibration: what raw gRPC itself costs in server memory per idle stream,
// as the floor to compare the replicas' footprint per subscribed stream with.
//
// --role=server: a generic (ByteBuffer) bidi service shaped like a Session
// at rest: each stream keeps one read pending and answers its first message
// with one small message, then stays idle. Prints `port=<N>` and serves until
// SIGINT/SIGTERM. Measure its RSS before and after the client is READY.
//
// --role=client: opens --streams calls over --connections TCP connections
// (stream i on connection i % C), sends one message on each, waits for every
// answer, prints `READY streams=<n>` and holds the streams until
// SIGINT/SIGTERM (or --hold has passed).
#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <memory>
#include <string>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "bench/direct_target.h"
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
ABSL_FLAG(std::string, target, "", "client: the server's address.");
ABSL_FLAG(std::vector<std::string>, channel_args, {},
          "server: extra integer channel arguments, name=value,...");
ABSL_FLAG(int, connections, 1, "client: TCP connections.");
ABSL_FLAG(int, streams, 1, "client: streams over all connections.");
ABSL_FLAG(absl::Duration, ready_timeout, absl::Seconds(120),
          "client: give up when the streams are not all answered by then.");
ABSL_FLAG(absl::Duration, hold, absl::InfiniteDuration(),
          "client: how long to hold the streams after READY.");

namespace entitysync {
namespace bench {
namespace {

constexpr char kMethod[] = "/entitysync.bench.Idle/Idle";

grpc::ByteBuffer SmallMessage() {
  const std::string bytes(20, 'x');
  grpc::Slice slice(bytes);
  return grpc::ByteBuffer(&slice, 1);
}

class IdleReactor final : public grpc::ServerGenericBidiReactor {
 public:
  IdleReactor() { StartRead(&read_); }

 private:
  void OnReadDone(bool ok) override {
    if (!ok) {
      absl::MutexLock lock(&mu_);
      read_done_ = true;
      MaybeFinishLocked();
      return;
    }
    read_.Clear();
    StartRead(&read_);
    {
      absl::MutexLock lock(&mu_);
      if (answered_) return;
      answered_ = true;
      writing_ = true;
    }
    // Only this reaction touches write_ until OnWriteDone.
    write_ = SmallMessage();
    StartWrite(&write_);
  }
  void OnWriteDone(bool) override {
    absl::MutexLock lock(&mu_);
    writing_ = false;
    MaybeFinishLocked();
  }
  void MaybeFinishLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    if (read_done_ && !writing_ && !finished_) {
      finished_ = true;
      Finish(grpc::Status::OK);
    }
  }
  void OnDone() override { delete this; }

  grpc::ByteBuffer read_;
  grpc::ByteBuffer write_;
  absl::Mutex mu_;
  bool answered_ ABSL_GUARDED_BY(mu_) = false;
  bool writing_ ABSL_GUARDED_BY(mu_) = false;
  bool read_done_ ABSL_GUARDED_BY(mu_) = false;
  bool finished_ ABSL_GUARDED_BY(mu_) = false;
};

class IdleService final : public grpc::CallbackGenericService {
  grpc::ServerGenericBidiReactor* CreateReactor(
      grpc::GenericCallbackServerContext*) override {
    return new IdleReactor;
  }
};

int RunServer(const StopSignal& stop) {
  IdleService service;
  grpc::ServerBuilder builder;
  int port = 0;
  builder.AddListeningPort(absl::GetFlag(FLAGS_address),
                           grpc::InsecureServerCredentials(), &port);
  for (const std::string& arg : absl::GetFlag(FLAGS_channel_args)) {
    std::pair<std::string, std::string> nv = absl::StrSplit(arg, '=');
    int value = 0;
    if (!absl::SimpleAtoi(nv.second, &value)) {
      std::fprintf(stderr, "--channel_args: %s is not name=integer\n",
                   arg.c_str());
      return 2;
    }
    builder.AddChannelArgument(nv.first, value);
  }
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
  server->Shutdown(std::chrono::system_clock::now());
  return 0;
}

class WaitingStream final
    : public grpc::ClientBidiReactor<grpc::ByteBuffer, grpc::ByteBuffer> {
 public:
  explicit WaitingStream(std::atomic<int>* answered) : answered_(answered) {}
  void Start(grpc::GenericStub* stub) {
    stub->PrepareBidiStreamingCall(&context_, kMethod, grpc::StubOptions(),
                                   this);
    write_ = SmallMessage();
    StartWrite(&write_);
    StartRead(&read_);
    StartCall();
  }

 private:
  void OnReadDone(bool ok) override {
    if (ok) answered_->fetch_add(1, std::memory_order_relaxed);
  }
  void OnDone(const grpc::Status& status) override {
    if (!status.ok()) {
      std::fprintf(stderr, "stream ended: code %d: %s\n",
                   static_cast<int>(status.error_code()),
                   status.error_message().c_str());
    }
  }

  std::atomic<int>* const answered_;
  grpc::ClientContext context_;
  grpc::ByteBuffer write_;
  grpc::ByteBuffer read_;
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
    std::fprintf(stderr, "--connections=%d needs more file descriptors\n",
                 connections);
    return 2;
  }
  std::vector<std::shared_ptr<grpc::Channel>> channels;
  std::vector<std::unique_ptr<grpc::GenericStub>> stubs;
  for (int c = 0; c < connections; ++c) {
    grpc::ChannelArguments args;
    args.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);  // one TCP each
    channels.push_back(grpc::CreateCustomChannel(
        DirectTarget(target), grpc::InsecureChannelCredentials(), args));
    stubs.push_back(std::make_unique<grpc::GenericStub>(channels.back()));
  }
  std::atomic<int> answered{0};
  // Leaked with the process (see the end of main).
  auto* calls = new std::vector<std::unique_ptr<WaitingStream>>;
  for (int i = 0; i < streams; ++i) {
    calls->push_back(std::make_unique<WaitingStream>(&answered));
    calls->back()->Start(stubs[i % connections].get());
  }
  const absl::Time deadline = absl::Now() + absl::GetFlag(FLAGS_ready_timeout);
  while (answered.load() < streams) {
    if (absl::Now() > deadline ||
        stop.stopped().WaitForNotificationWithTimeout(absl::Milliseconds(20))) {
      std::fprintf(stderr, "only %d of %d streams answered\n", answered.load(),
                   streams);
      return 1;
    }
  }
  std::printf("READY streams=%d connections=%d\n", streams, connections);
  std::fflush(stdout);
  stop.stopped().WaitForNotificationWithTimeout(absl::GetFlag(FLAGS_hold));
  return 0;
}

}  // namespace
}  // namespace bench
}  // namespace entitysync

int main(int argc, char** argv) {
  // First, so that every thread (gRPC's too) inherits the blocked signals.
  static const auto* stop = new entitysync::bench::StopSignal;
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
