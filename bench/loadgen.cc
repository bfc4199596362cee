// Load generator for entitysync replicas, with its own fast resolver:
//  1. serves entitysync.v1.Resolver on --resolver_address and prints
//     `resolver_port=<N>`;
//  2. waits until every --targets and --notify_targets accepts connections,
//     opens --connections channels (one TCP connection each) with
//     --streams_per_connection Subscribe streams of --keys_per_stream keys
//     each, and prints `READY streams=<n> subscriptions=<m>` once every
//     snapshot is in;
//  3. sends Notify calls open-loop (--notify_rate, or --burst every
//     --burst_every) for --warmup + --duration, measuring notify-to-delivery
//     latency from the intended send time carried in each row;
//  4. keeps the streams open for --hold and prints one `RESULT <json>` line.
// SIGINT/SIGTERM skip to 4. Progress and warnings go to stderr.
//
// RESULT: latency_us is notify-to-delivery (intended send time to receipt)
// of changes meant to be sent in the measured window, on ready streams that
// read; deliveries counts updates received in that window; superseded
// counts the versions those updates skipped (changes coalesced away);
// client_cpu_seconds is the whole process, client_cpu_seconds_measured the
// measured window only.
//
//   bazel-bin/bench/loadgen --targets=127.0.0.1:7070
//       --notify_targets=127.0.0.1:7071 --connections=100 --notify_rate=50
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <functional>
#include <memory>
#include <numeric>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/random/random.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "bench/bench_resolver.h"
#include "bench/direct_target.h"
#include "bench/json.h"
#include "bench/key_space.h"
#include "bench/load_streams.h"
#include "bench/notify_driver.h"
#include "bench/process_stats.h"
#include "bench/stop_signal.h"
#include "bench/version_table.h"
#include "bench/ws_load.h"
#include "grpcpp/create_channel.h"
#include "grpcpp/security/credentials.h"
#include "grpcpp/security/server_credentials.h"
#include "grpcpp/server.h"
#include "grpcpp/server_builder.h"

ABSL_FLAG(std::string, resolver_address, "127.0.0.1:0",
          "Where the built-in Resolver listens (port 0: any free port).");
ABSL_FLAG(int, row_bytes, 100,
          "Bytes of the one row per resolved key (at least 16: version and "
          "intended notify time, then padding).");
ABSL_FLAG(absl::Duration, resolve_delay, absl::ZeroDuration(),
          "The resolver answers each call after this long.");

ABSL_FLAG(std::vector<std::string>, targets, {},
          "Replicas' public addresses; connection i goes to targets[i % n].");
ABSL_FLAG(std::string, transport, "grpc",
          "grpc: Subscribe streams to --targets (replicas' public ports); "
          "websocket: one WebSocket per connection to --targets (gateways' "
          "addresses, e.g. a replica's --gateway_address) in the binary "
          "protocol, one stream each.");
ABSL_FLAG(int, ws_threads, 1,
          "Threads running the WebSocket connections (--transport=websocket).");
ABSL_FLAG(int, connections, 0,
          "TCP connections (one channel each); 0 (and no notifying or "
          "--hold): serve the resolver until SIGINT/SIGTERM.");
ABSL_FLAG(int, streams_per_connection, 1,
          "Subscribe streams per connection. Replicas accept "
          "--max_concurrent_streams (default 100) at once per connection.");
ABSL_FLAG(int, keys_per_stream, 1, "Subscriptions per stream.");
ABSL_FLAG(int64_t, key_space, 1, "Key ids are \"0\"..\"key_space-1\".");
ABSL_FLAG(std::string, entity, "bench", "Entity of every key.");
ABSL_FLAG(std::string, key_pattern, "uniform",
          "uniform: stream g subscribes to ids (g*K+j) % key_space; "
          "personal_group: to \"u<g>\" and \"g<g/group_size>\".");
ABSL_FLAG(int, group_size, 10, "Streams per group key (personal_group).");
ABSL_FLAG(double, stalled_fraction, 0,
          "Fraction of streams that stop reading once ready.");
ABSL_FLAG(double, churn_per_minute, 0,
          "Fraction of connections closed and reopened per minute, spread "
          "over one-second steps.");
ABSL_FLAG(std::vector<std::string>, channel_args, {},
          "Extra integer gRPC arguments for the subscriber connections, as "
          "name=value (e.g. grpc.http2.bdp_probe=0), to see what client "
          "settings change.");
ABSL_FLAG(int, credentials_bytes, 0,
          "Send an `authorization` token of this many bytes on every stream "
          "(real tokens are often hundreds of bytes); 0: none.");
ABSL_FLAG(bool, batch, true,
          "Ask for SubscribeResponse.batch (several waiting messages in "
          "one), as the C++ client does.");
ABSL_FLAG(int, max_pending_streams, 1000,
          "Streams opened but not yet ready, at most (see "
          "--max_pending_subscriptions).");
ABSL_FLAG(int, max_pending_subscriptions, 500,
          "Subscriptions sent but without a snapshot yet, at most: start-up "
          "paced so that it does not flood the replicas, whose subscribe-time "
          "resolves time out (after 2 s by default) when too many queue.");
ABSL_FLAG(absl::Duration, ready_timeout, absl::Minutes(2),
          "Give up waiting for snapshots after this long and go on with the "
          "streams that are ready (with a warning).");

ABSL_FLAG(std::vector<std::string>, notify_targets, {},
          "Replicas' internal addresses (Notifier); round-robin per call.");
ABSL_FLAG(double, notify_rate, 0, "Notify calls per second.");
ABSL_FLAG(int, notify_batch, 1, "Changes per Notify call.");
ABSL_FLAG(std::string, notify_key, "",
          "Notify only this id (default: uniform over the key space).");
ABSL_FLAG(int64_t, max_outstanding, 10000,
          "Notify calls in flight at most; calls beyond are dropped and "
          "counted as errors.");
ABSL_FLAG(int, burst, 0,
          "Instead of --notify_rate: every --burst_every, this many Notify "
          "calls on --notify_key (default \"0\") back to back.");
ABSL_FLAG(absl::Duration, burst_every, absl::Seconds(1), "Burst period.");
ABSL_FLAG(absl::Duration, duration, absl::Seconds(10),
          "Measured notify phase.");
ABSL_FLAG(absl::Duration, warmup, absl::Seconds(2),
          "Notify phase before the measured one.");
ABSL_FLAG(absl::Duration, drain, absl::Seconds(1),
          "After the notify phase, time for late deliveries to arrive.");
ABSL_FLAG(absl::Duration, hold, absl::ZeroDuration(),
          "Keep every stream open this long before finishing.");

namespace entitysync {
namespace bench {
namespace {

// One per --targets and --notify_targets, the replicas' two connections to
// the resolver, stdio, epoll and gRPC's own wakeup fds, with room to spare.
constexpr uint64_t kFdsBesidesConnections = 64;

struct Flags {
  std::vector<std::string> targets;
  std::vector<std::string> notify_targets;
  uint64_t connections = 0;
  uint64_t streams_per_connection = 1;
  uint64_t keys_per_stream = 1;
  uint64_t key_space = 1;
  std::string entity;
  bool personal_group = false;
  uint64_t group_size = 10;
  double stalled_fraction = 0;
  double churn_per_minute = 0;
  uint64_t max_pending_streams = 1000;
  uint64_t max_pending_subscriptions = 500;
  double notify_rate = 0;
  uint64_t notify_batch = 1;
  std::string notify_key;
  int burst = 0;
  absl::Duration burst_every;
  absl::Duration duration;
  absl::Duration warmup;

  std::vector<std::pair<std::string, int>> channel_args;
  bool websocket = false;
  int ws_threads = 1;

  uint64_t streams() const { return connections * streams_per_connection; }
  bool notifying() const { return notify_rate > 0 || burst > 0; }
};

absl::StatusOr<Flags> ReadFlags() {
  Flags f;
  f.targets = absl::GetFlag(FLAGS_targets);
  f.notify_targets = absl::GetFlag(FLAGS_notify_targets);
  const int connections = absl::GetFlag(FLAGS_connections);
  const int streams_per_connection =
      absl::GetFlag(FLAGS_streams_per_connection);
  const int keys_per_stream = absl::GetFlag(FLAGS_keys_per_stream);
  const int64_t key_space = absl::GetFlag(FLAGS_key_space);
  const int group_size = absl::GetFlag(FLAGS_group_size);
  const int notify_batch = absl::GetFlag(FLAGS_notify_batch);
  const int max_pending = absl::GetFlag(FLAGS_max_pending_subscriptions);
  const int max_pending_streams = absl::GetFlag(FLAGS_max_pending_streams);
  const std::string pattern = absl::GetFlag(FLAGS_key_pattern);
  if (connections < 0 || streams_per_connection < 1 || keys_per_stream < 1 ||
      key_space < 1 || group_size < 1 || max_pending < 1 ||
      max_pending_streams < 1) {
    return absl::InvalidArgumentError(
        "--connections must be >= 0; --streams_per_connection, "
        "--keys_per_stream, --key_space, --group_size and "
        "--max_pending_streams and --max_pending_subscriptions >= 1");
  }
  if (pattern != "uniform" && pattern != "personal_group") {
    return absl::InvalidArgumentError(
        "--key_pattern must be uniform or personal_group");
  }
  f.connections = static_cast<uint64_t>(connections);
  f.streams_per_connection = static_cast<uint64_t>(streams_per_connection);
  f.keys_per_stream = static_cast<uint64_t>(keys_per_stream);
  f.key_space = static_cast<uint64_t>(key_space);
  f.entity = absl::GetFlag(FLAGS_entity);
  f.personal_group = pattern == "personal_group";
  f.group_size = static_cast<uint64_t>(group_size);
  f.stalled_fraction = absl::GetFlag(FLAGS_stalled_fraction);
  f.churn_per_minute = absl::GetFlag(FLAGS_churn_per_minute);
  f.max_pending_subscriptions = static_cast<uint64_t>(max_pending);
  f.max_pending_streams = static_cast<uint64_t>(max_pending_streams);
  f.notify_rate = absl::GetFlag(FLAGS_notify_rate);
  f.notify_key = absl::GetFlag(FLAGS_notify_key);
  f.burst = absl::GetFlag(FLAGS_burst);
  f.burst_every = absl::GetFlag(FLAGS_burst_every);
  f.duration = absl::GetFlag(FLAGS_duration);
  f.warmup = absl::GetFlag(FLAGS_warmup);
  if (f.personal_group && f.streams() == 0) {
    return absl::InvalidArgumentError(
        "--key_pattern=personal_group needs --connections > 0");
  }
  const std::string transport = absl::GetFlag(FLAGS_transport);
  if (transport != "grpc" && transport != "websocket") {
    return absl::InvalidArgumentError("--transport must be grpc or websocket");
  }
  f.websocket = transport == "websocket";
  f.ws_threads = absl::GetFlag(FLAGS_ws_threads);
  if (f.websocket && (f.streams_per_connection != 1 || f.stalled_fraction > 0 ||
                      f.ws_threads < 1)) {
    return absl::InvalidArgumentError(
        "--transport=websocket carries one stream per connection "
        "(--streams_per_connection=1), none stalled, on --ws_threads >= 1");
  }
  if (f.connections > 0 && f.targets.empty()) {
    return absl::InvalidArgumentError("--connections > 0 needs --targets");
  }
  if (!(f.stalled_fraction >= 0 && f.stalled_fraction <= 1)) {
    return absl::InvalidArgumentError("--stalled_fraction must be in [0, 1]");
  }
  if (!(f.churn_per_minute >= 0)) {
    return absl::InvalidArgumentError("--churn_per_minute must be >= 0");
  }
  if (notify_batch < 1 || notify_batch > 1000) {
    return absl::InvalidArgumentError("--notify_batch must be in [1, 1000]");
  }
  f.notify_batch = static_cast<uint64_t>(notify_batch);
  if (!(f.notify_rate >= 0) || f.burst < 0) {
    return absl::InvalidArgumentError("--notify_rate and --burst must be >= 0");
  }
  if (f.notify_rate > 0 && f.burst > 0) {
    return absl::InvalidArgumentError(
        "--notify_rate and --burst are alternatives");
  }
  if (f.burst > 0 && f.burst_every <= absl::ZeroDuration()) {
    return absl::InvalidArgumentError("--burst_every must be positive");
  }
  if (f.notifying() && f.notify_targets.empty()) {
    return absl::InvalidArgumentError(
        "--notify_rate or --burst needs --notify_targets");
  }
  if (f.burst > 0 && f.notify_key.empty()) f.notify_key = "0";
  if (f.duration < absl::ZeroDuration() || f.warmup < absl::ZeroDuration()) {
    return absl::InvalidArgumentError(
        "--duration and --warmup must not be negative");
  }
  for (const std::string& arg : absl::GetFlag(FLAGS_channel_args)) {
    const std::vector<std::string> parts = absl::StrSplit(arg, '=');
    int value;
    if (parts.size() != 2 || parts[0].empty() ||
        !absl::SimpleAtoi(parts[1], &value)) {
      return absl::InvalidArgumentError(
          absl::StrCat("--channel_args: '", arg, "' is not name=integer"));
    }
    f.channel_args.emplace_back(parts[0], value);
  }
  if (absl::GetFlag(FLAGS_row_bytes) < 16) {
    return absl::InvalidArgumentError("--row_bytes must be at least 16");
  }
  if (absl::GetFlag(FLAGS_max_outstanding) < 1) {
    return absl::InvalidArgumentError("--max_outstanding must be >= 1");
  }
  return f;
}

// Every fd a connection needs must fit under the hard limit: gRPC reports
// running out of fds only as connection failures, far from the cause.
absl::Status CheckFdBudget(const Flags& f) {
  absl::StatusOr<uint64_t> limit = RaiseFdLimit();
  if (!limit.ok()) return limit.status();
  const uint64_t needed = f.connections + kFdsBesidesConnections;
  if (needed > *limit) {
    return absl::ResourceExhaustedError(absl::StrCat(
        "--connections=", f.connections, " needs about ", needed,
        " file descriptors (one per connection plus ", kFdsBesidesConnections,
        ") but this process may open ", *limit, " (ulimit -Hn); use at most ",
        *limit > kFdsBesidesConnections ? *limit - kFdsBesidesConnections : 0,
        " connections, with more --streams_per_connection (e.g. 10000 x 2 "
        "for 20000 streams)"));
  }
  return absl::OkStatus();
}

// Exactly floor(fraction * total) streams stall, scattered over connections
// and so over targets: stream g stalls when its place in a fixed
// permutation of 0..total-1, g * m mod total with m coprime to total, is
// below that count.
std::function<bool(uint64_t)> StalledStreams(double fraction, uint64_t total) {
  const auto stalled =
      static_cast<uint64_t>(std::floor(fraction * static_cast<double>(total)));
  if (stalled == 0) return [](uint64_t) { return false; };
  uint64_t m = 2654435761;  // a prime near 2^32 / golden ratio
  while (std::gcd(m, total) != 1) m += 2;
  return [m, total, stalled](uint64_t g) {
    return static_cast<unsigned __int128>(g) * m % total < stalled;
  };
}

class LoadGenerator {
 public:
  LoadGenerator(Flags flags, const StopSignal* stop)
      : f_(std::move(flags)),
        stop_(stop),
        keys_(f_.personal_group
                  ? KeySpace::PersonalGroup(f_.streams(), f_.group_size)
                  : KeySpace::Numbered(f_.key_space)),
        table_(keys_.size()),
        stalled_(StalledStreams(f_.stalled_fraction, f_.streams())) {
    env_.entity = f_.entity;
    env_.keys = &keys_;
    env_.keys_per_stream = f_.keys_per_stream;
    env_.counters = &counters_;
    env_.recorder = &recorder_;
    env_.channel_args = f_.channel_args;
    env_.credentials =
        std::string(static_cast<size_t>(
                        std::max(absl::GetFlag(FLAGS_credentials_bytes), 0)),
                    't');
    env_.batch = absl::GetFlag(FLAGS_batch);
  }

  int Run() {
    if (absl::Status s = StartResolver(); !s.ok()) return Fail(s);
    if (absl::Status s = WaitForTargets(); !s.ok()) return Fail(s);
    OpenStreams();
    if (!stop_->HasBeenNotified()) {
      if (f_.churn_per_minute > 0 && f_.connections > 0) {
        churn_thread_ = std::thread(&LoadGenerator::Churn, this);
      }
      if (f_.notifying()) Notify();
      if (!stop_->HasBeenNotified() && driver_ != nullptr) {
        if (!driver_->WaitIdle(absl::Seconds(15))) {
          std::fprintf(stderr, "warning: %lld Notify calls still in flight\n",
                       static_cast<long long>(driver_->outstanding()));
        }
        Sleep(absl::GetFlag(FLAGS_drain));
      }
      const absl::Duration hold = absl::GetFlag(FLAGS_hold);
      if (hold > absl::ZeroDuration()) {
        std::fprintf(stderr, "holding %s\n",
                     absl::FormatDuration(hold).c_str());
        Sleep(hold);
      } else if (f_.connections == 0 && !f_.notifying()) {
        // Resolver only: serve until stopped.
        std::fprintf(stderr, "serving the resolver until SIGTERM\n");
        stop_->stopped().WaitForNotification();
      }
    }
    churn_stop_.Notify();
    if (churn_thread_.joinable()) churn_thread_.join();
    // Before the stalled streams read what they have buffered.
    rss_bytes_ = ProcessRssBytes();
    if (f_.stalled_fraction > 0) {
      ResumeStalled();
    }
    PrintResult();
    return 0;
  }

 private:
  int Fail(const absl::Status& status) {
    std::fprintf(stderr, "loadgen: %s\n", status.ToString().c_str());
    return 1;
  }

  // False when stopped early.
  bool Sleep(absl::Duration d) {
    if (d <= absl::ZeroDuration()) return !stop_->HasBeenNotified();
    return !stop_->stopped().WaitForNotificationWithTimeout(d);
  }

  absl::Status StartResolver() {
    BenchResolverOptions options;
    options.row_bytes = static_cast<size_t>(absl::GetFlag(FLAGS_row_bytes));
    options.delay = absl::GetFlag(FLAGS_resolve_delay);
    resolver_ = std::make_unique<BenchResolver>(&keys_, &table_, options);
    grpc::ServerBuilder builder;
    int port = 0;
    builder.AddListeningPort(absl::GetFlag(FLAGS_resolver_address),
                             grpc::InsecureServerCredentials(), &port);
    builder.RegisterService(resolver_.get());
    resolver_server_ = builder.BuildAndStart();
    if (resolver_server_ == nullptr || port == 0) {
      return absl::UnavailableError(
          absl::StrCat("cannot listen on --resolver_address=",
                       absl::GetFlag(FLAGS_resolver_address)));
    }
    std::printf("resolver_port=%d\n", port);
    std::fflush(stdout);
    return absl::OkStatus();
  }

  absl::Status WaitForTargets() {
    // A gateway speaks no gRPC: its connections report their own failures.
    std::vector<std::string> all = f_.connections > 0 && !f_.websocket
                                       ? f_.targets
                                       : std::vector<std::string>{};
    if (f_.notifying()) {
      all.insert(all.end(), f_.notify_targets.begin(), f_.notify_targets.end());
    }
    if (all.empty()) return absl::OkStatus();
    const absl::Time deadline = absl::Now() + absl::Seconds(60);
    for (const std::string& target : all) {
      // Kept until exit: destroying the last channel would tear down gRPC's
      // callback threads for the streams opened next.
      probes_.push_back(grpc::CreateChannel(
          DirectTarget(target), grpc::InsecureChannelCredentials()));
      while (!probes_.back()->WaitForConnected(absl::ToChronoTime(
          std::min(deadline, absl::Now() + absl::Seconds(1))))) {
        if (stop_->HasBeenNotified()) {
          return absl::CancelledError("stopped while waiting for targets");
        }
        if (absl::Now() >= deadline) {
          return absl::DeadlineExceededError(
              absl::StrCat(target, " does not accept connections after 60 s"));
        }
      }
    }
    if (f_.notifying()) {
      driver_ = std::make_unique<NotifyDriver>(
          f_.notify_targets, f_.entity, &keys_, &table_,
          absl::GetFlag(FLAGS_max_outstanding));
    }
    return absl::OkStatus();
  }

  std::unique_ptr<Connection> NewConnection(uint64_t c, bool initial) {
    if (f_.websocket) {
      if (ws_threads_ == nullptr) {
        ws_threads_ = std::make_unique<WsClientThreads>(f_.ws_threads);
      }
      return std::make_unique<WsLoadConnection>(
          &env_, ws_threads_.get(), f_.targets[c % f_.targets.size()], c,
          initial);
    }
    return std::make_unique<LoadConnection>(
        &env_, f_.targets[c % f_.targets.size()], c, f_.streams_per_connection,
        initial, stalled_);
  }

  int64_t Settled() const {
    return counters_.ready.load(std::memory_order_relaxed) +
           counters_.failed_before_ready.load(std::memory_order_relaxed);
  }

  void OpenStreams() {
    const absl::Time start = absl::Now();
    const absl::Time deadline = start + absl::GetFlag(FLAGS_ready_timeout);
    const auto total = static_cast<int64_t>(f_.streams());
    bool timed_out = false;
    int64_t opened_subscriptions = 0;
    absl::Time last_progress = start;
    auto progress = [&] {
      if (absl::Now() - last_progress < absl::Seconds(5)) return;
      last_progress = absl::Now();
      std::fprintf(stderr, "opening: %lld of %lld streams ready\n",
                   static_cast<long long>(
                       counters_.ready.load(std::memory_order_relaxed)),
                   static_cast<long long>(total));
    };
    for (uint64_t c = 0; c < f_.connections && !timed_out; ++c) {
      auto saturated = [&] {
        return opened_subscriptions - counters_.settled_subscriptions.load(
                                          std::memory_order_relaxed) >=
                   static_cast<int64_t>(f_.max_pending_subscriptions) ||
               static_cast<int64_t>(c * f_.streams_per_connection) -
                       Settled() >=
                   static_cast<int64_t>(f_.max_pending_streams);
      };
      // At least one connection at a time, whatever its subscriptions.
      while (opened_subscriptions > 0 && saturated()) {
        if (!Sleep(absl::Milliseconds(1))) return;
        if (absl::Now() >= deadline) {
          timed_out = true;
          break;
        }
        progress();
      }
      if (timed_out) break;
      connections_.push_back(NewConnection(c, /*initial=*/true));
      opened_subscriptions +=
          static_cast<int64_t>(connections_.back()->subscriptions());
      connections_.back()->Start();
    }
    while (!timed_out && Settled() < total) {
      if (!Sleep(absl::Milliseconds(2))) return;
      if (absl::Now() >= deadline) timed_out = true;
      progress();
    }
    ready_seconds_ = absl::ToDoubleSeconds(absl::Now() - start);
    const int64_t ready = counters_.ready.load(std::memory_order_relaxed);
    if (ready < total) {
      std::fprintf(
          stderr, "warning: %lld of %lld streams ready (%lld failed)%s\n",
          static_cast<long long>(ready), static_cast<long long>(total),
          static_cast<long long>(
              counters_.failed_before_ready.load(std::memory_order_relaxed)),
          timed_out ? " at --ready_timeout" : "");
    }
    std::printf("READY streams=%lld subscriptions=%lld\n",
                static_cast<long long>(ready),
                static_cast<long long>(
                    counters_.subscriptions.load(std::memory_order_relaxed)));
    std::fflush(stdout);
  }

  // Closes and reopens random connections; runs on its own thread from
  // READY until the end, the only one touching connections_ meanwhile.
  void Churn() {
    absl::BitGen rng;
    double due = 0;
    std::vector<std::unique_ptr<Connection>> retiring;
    const uint64_t n = connections_.size();
    while (!churn_stop_.WaitForNotificationWithTimeout(absl::Seconds(1))) {
      due += f_.churn_per_minute / 60 * static_cast<double>(n);
      for (; due >= 1; due -= 1) {
        const uint64_t c = absl::Uniform<uint64_t>(rng, 0, n);
        connections_[c]->Cancel();
        retiring.push_back(std::move(connections_[c]));
        connections_[c] = NewConnection(c, /*initial=*/false);
        connections_[c]->Start();
        reconnects_.fetch_add(1, std::memory_order_relaxed);
      }
      // Destroyed here, off gRPC's threads, once their streams are done.
      retiring.erase(std::remove_if(retiring.begin(), retiring.end(),
                                    [](const auto& c) { return c->Done(); }),
                     retiring.end());
    }
    // Streams still finishing must outlive this thread: park them.
    for (auto& c : retiring) connections_.push_back(std::move(c));
  }

  void Notify() {
    const absl::Time t0 = absl::Now();
    const absl::Time start = t0 + f_.warmup;
    const absl::Time end = start + f_.duration;
    recorder_.SetWindow(start, end);
    std::fprintf(stderr, "notifying for %s (+%s warmup)\n",
                 absl::FormatDuration(f_.duration).c_str(),
                 absl::FormatDuration(f_.warmup).c_str());
    std::vector<uint64_t> batch;
    std::optional<uint64_t> fixed_key;
    if (!f_.notify_key.empty()) fixed_key = keys_.Index(f_.notify_key);
    absl::BitGen rng;
    bool cpu_sampled = false;
    auto sample_cpu = [&](absl::Time now) {
      if (!cpu_sampled && now >= start) {
        cpu_at_window_start_ = ProcessCpuSeconds();
        cpu_sampled = true;
      }
    };
    bool stopped = false;
    if (f_.burst > 0) {
      for (int64_t b = 0;; ++b) {
        const absl::Time t = t0 + f_.burst_every * b;
        if (t >= end) break;
        if (!Sleep(t - absl::Now())) {
          stopped = true;
          break;
        }
        sample_cpu(absl::Now());
        batch.assign(1, *fixed_key);
        for (int i = 0; i < f_.burst; ++i) driver_->Send(batch, t);
      }
    } else {
      for (int64_t k = 0;; ++k) {
        const absl::Time t =
            t0 + absl::Seconds(static_cast<double>(k) / f_.notify_rate);
        if (t >= end) break;
        // Late calls go out at once, back to back: the schedule, not the
        // previous call, decides when a call is due.
        const absl::Time now = absl::Now();
        if (t > now && !Sleep(t - now)) {
          stopped = true;
          break;
        }
        sample_cpu(t);
        batch.clear();
        for (uint64_t i = 0; i < f_.notify_batch; ++i) {
          batch.push_back(fixed_key
                              ? *fixed_key
                              : absl::Uniform<uint64_t>(rng, 0, keys_.size()));
        }
        driver_->Send(batch, t);
      }
    }
    const absl::Time stop_time = stopped ? absl::Now() : end;
    if (stopped) recorder_.SetWindow(start, stop_time);
    measured_seconds_ = std::max(0.0, absl::ToDoubleSeconds(stop_time - start));
    if (cpu_sampled) {
      cpu_measured_ = ProcessCpuSeconds() - cpu_at_window_start_;
    }
  }

  // Stalled streams the server closed learn it only by reading; give them
  // a moment to, so that stalled_closed counts them.
  void ResumeStalled() {
    for (auto& c : connections_) c->ResumeStalled();
    absl::SleepFor(absl::Seconds(2));
  }

  void PrintResult() {
    const DeliveryRecorder::Totals totals = recorder_.Collect();
    auto n = [](const std::atomic<int64_t>& a) {
      return a.load(std::memory_order_relaxed);
    };
    const int64_t calls = driver_ ? driver_->calls() : 0;
    const int64_t errors = driver_ ? driver_->errors() : 0;
    const int64_t changes = driver_ ? driver_->changes() : 0;
    const double rate =
        measured_seconds_ > 0
            ? static_cast<double>(totals.deliveries) / measured_seconds_
            : 0;
    std::string json = absl::StrCat(
        "{\"streams\":", n(counters_.ready),
        ",\"subscriptions\":", n(counters_.subscriptions),
        ",\"ready_seconds\":", JsonNumber(ready_seconds_),
        ",\"notifies_sent\":", calls, ",\"notify_errors\":", errors,
        ",\"changes_sent\":", changes, ",\"deliveries\":", totals.deliveries,
        ",\"deliveries_per_second\":", JsonNumber(rate, 1),
        ",\"superseded\":", totals.superseded,
        ",\"latency_us\":", totals.latency.ToJson(),
        ",\"stalled_streams\":", n(counters_.stalled),
        ",\"stream_errors\":", n(counters_.stream_errors),
        ",\"reconnects\":", reconnects_.load(std::memory_order_relaxed),
        ",\"resolver\":", resolver_->StatsJson());
    absl::StrAppend(
        &json, ",\"client_cpu_seconds\":", JsonNumber(ProcessCpuSeconds()),
        ",\"client_rss_bytes\":", rss_bytes_,
        ",\"duration_seconds\":", JsonNumber(measured_seconds_),
        ",\"client_cpu_seconds_measured\":", JsonNumber(cpu_measured_),
        ",\"streams_failed\":", n(counters_.failed_before_ready),
        ",\"subscribe_errors\":", n(counters_.subscribe_errors),
        ",\"stalled_closed\":", n(counters_.stalled_closed),
        ",\"stale\":", n(counters_.stale), ",\"goaway\":", n(counters_.goaway),
        ",\"malformed\":", n(counters_.malformed),
        ",\"unknown_keys\":", n(counters_.unknown_keys), "}");
    std::printf("RESULT %s\n", json.c_str());
    std::fflush(stdout);
  }

  // Const after construction.
  const Flags f_;
  const StopSignal* const stop_;
  const KeySpace keys_;

  VersionTable table_;
  const std::function<bool(uint64_t)> stalled_;
  StreamCounters counters_;
  DeliveryRecorder recorder_;
  StreamEnvironment env_;
  std::unique_ptr<BenchResolver> resolver_;
  std::unique_ptr<grpc::Server> resolver_server_;
  std::vector<std::shared_ptr<grpc::Channel>> probes_;
  std::unique_ptr<NotifyDriver> driver_;
  // Declared before the connections, which it outlives.
  std::unique_ptr<WsClientThreads> ws_threads_;
  // Owned by the main thread, and by the churn thread while it runs.
  std::vector<std::unique_ptr<Connection>> connections_;
  std::thread churn_thread_;
  absl::Notification churn_stop_;
  std::atomic<int64_t> reconnects_{0};

  double ready_seconds_ = 0;
  double measured_seconds_ = 0;
  double cpu_at_window_start_ = 0;
  double cpu_measured_ = 0;
  int64_t rss_bytes_ = 0;
};

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
  absl::StatusOr<entitysync::bench::Flags> flags =
      entitysync::bench::ReadFlags();
  if (!flags.ok()) {
    std::fprintf(stderr, "loadgen: %s\n",
                 std::string(flags.status().message()).c_str());
    return 2;
  }
  if (!flags->notify_key.empty()) {
    // Checked here: the key space depends on the other flags.
    const auto keys =
        flags->personal_group
            ? entitysync::bench::KeySpace::PersonalGroup(flags->streams(),
                                                         flags->group_size)
            : entitysync::bench::KeySpace::Numbered(flags->key_space);
    if (!keys.Index(flags->notify_key)) {
      std::fprintf(stderr, "loadgen: --notify_key=%s is not in the key space\n",
                   flags->notify_key.c_str());
      return 2;
    }
  }
  if (absl::Status s = entitysync::bench::CheckFdBudget(*flags); !s.ok()) {
    std::fprintf(stderr, "loadgen: %s\n", s.ToString().c_str());
    return 2;
  }
  // Deliberately leaked, and the process ends with _exit: tearing down tens
  // of thousands of calls and channels takes seconds and measures nothing;
  // the kernel closes the sockets.
  auto* generator =
      new entitysync::bench::LoadGenerator(*std::move(flags), stop);
  const int code = generator->Run();
  std::fflush(stdout);
  std::fflush(stderr);
  _exit(code);
}
