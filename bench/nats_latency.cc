// Publish -> deliver latency through two NatsBus instances on one
// nats-server, one notice at a time (the floor, no queueing), with cnats'
// SendAsap on and off. Prints p50/p90/p99/max in microseconds.
//
//   nats-server -a 127.0.0.1 -p 4333 &
//   bazel run -c opt //bench:nats_latency -- --nats_url=nats://127.0.0.1:4333
#include <algorithm>
#include <cstdio>
#include <string>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "adapters/bus/nats_bus.h"

ABSL_FLAG(std::string, nats_url, "nats://127.0.0.1:4222", "NATS server.");
ABSL_FLAG(int, count, 5000, "Notices per setting.");

namespace entitysync {
namespace {

void Measure(bool send_asap) {
  NatsBusOptions options;
  options.urls = {absl::GetFlag(FLAGS_nats_url)};
  options.subject_prefix = "latency";
  options.send_asap = send_asap;
  auto subscriber = NewNatsBus(options);
  auto publisher = NewNatsBus(options);
  absl::Mutex mu;
  int64_t received = -1;
  BusHandlers handlers;
  handlers.on_notice = [&](const v1::Notice& n) {
    absl::MutexLock lock(&mu);
    received = n.timestamp_unix_nanos();
  };
  if (!subscriber->Start(handlers).ok() || !publisher->Start({}).ok()) {
    std::fprintf(stderr, "cannot start buses\n");
    return;
  }
  while (subscriber->state() != BusState::kConnected ||
         publisher->state() != BusState::kConnected) {
    absl::SleepFor(absl::Milliseconds(10));
  }
  subscriber->AddInterest("items", "1");
  absl::SleepFor(absl::Milliseconds(100));
  std::vector<double> micros;
  const int count = absl::GetFlag(FLAGS_count);
  for (int i = 0; i < count + 100; ++i) {
    v1::Notice notice;
    notice.mutable_key()->set_entity("items");
    notice.mutable_key()->set_id("1");
    const int64_t sent = absl::GetCurrentTimeNanos();
    notice.set_timestamp_unix_nanos(sent);
    if (!publisher->Publish(notice).ok()) continue;
    struct Arrived {
      const int64_t* received;
      int64_t sent;
    } arrived{&received, sent};
    absl::MutexLock lock(&mu);
    mu.AwaitWithTimeout(
        absl::Condition(
            +[](Arrived* a) { return *a->received == a->sent; }, &arrived),
        absl::Seconds(1));
    if (i >= 100) micros.push_back((absl::GetCurrentTimeNanos() - sent) / 1e3);
  }
  std::sort(micros.begin(), micros.end());
  auto at = [&](double q) {
    return micros[static_cast<size_t>(q * (micros.size() - 1))];
  };
  std::printf(
      "send_asap=%-5s n=%zu p50=%.0fus p90=%.0fus p99=%.0fus max=%.0fus\n",
      send_asap ? "true" : "false", micros.size(), at(0.5), at(0.9), at(0.99),
      micros.back());
  subscriber->Stop();
  publisher->Stop();
}

}  // namespace
}  // namespace entitysync

int main(int argc, char** argv) {
  absl::ParseCommandLine(argc, argv);
  entitysync::Measure(true);
  entitysync::Measure(false);
  return 0;
}
