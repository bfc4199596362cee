// Calibration: the round trip through one nats-server with raw cnats, one
// message at a time: a requester connection publishes --payload_bytes on a
// subject, a responder connection (subscribed to it) publishes them back to
// the reply inbox. Both use SendAsap, as the replicas' NatsBus does.
// Prints
//   RESULT {"rtt_us":{"count":n,"p50":x,"p90":x,"p99":x,"p999":x,"max":x,
//                     "mean":x}}
//
//   nats-server -a 127.0.0.1 -p 4333 &
//   bazel-bin/bench/nats_rtt --nats_url=nats://127.0.0.1:4333
#include <nats/nats.h>

#include <cstdio>
#include <string>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/random/random.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "bench/histogram.h"

ABSL_FLAG(std::string, nats_url, "nats://127.0.0.1:4222", "NATS server.");
ABSL_FLAG(int, count, 5000, "Measured round trips.");
ABSL_FLAG(int, warmup_count, 100, "Round trips before measuring.");
ABSL_FLAG(int, payload_bytes, 150, "Bytes of each message.");

namespace entitysync {
namespace bench {
namespace {

void Echo(natsConnection* nc, natsSubscription*, natsMsg* msg, void*) {
  if (const char* reply = natsMsg_GetReply(msg); reply != nullptr) {
    natsConnection_Publish(nc, reply, natsMsg_GetData(msg),
                           natsMsg_GetDataLength(msg));
  }
  natsMsg_Destroy(msg);
}

natsStatus Connect(const std::string& url, natsConnection** nc) {
  natsOptions* opts = nullptr;
  natsStatus s = natsOptions_Create(&opts);
  if (s == NATS_OK) s = natsOptions_SetURL(opts, url.c_str());
  // Flush each publish at once instead of batching: one message at a time
  // would otherwise wait for the flusher.
  if (s == NATS_OK) s = natsOptions_SetSendAsap(opts, true);
  if (s == NATS_OK) s = natsConnection_Connect(nc, opts);
  natsOptions_Destroy(opts);
  return s;
}

int Run() {
  const std::string url = absl::GetFlag(FLAGS_nats_url);
  const int count = absl::GetFlag(FLAGS_count);
  const int warmup = absl::GetFlag(FLAGS_warmup_count);
  const int payload_bytes = absl::GetFlag(FLAGS_payload_bytes);
  if (count < 1 || warmup < 0 || payload_bytes < 0) {
    std::fprintf(stderr,
                 "--count must be >= 1, --warmup_count and --payload_bytes "
                 ">= 0\n");
    return 2;
  }
  // A subject of its own, so that concurrent runs on one server do not
  // answer each other.
  absl::BitGen rng;
  const std::string subject =
      absl::StrCat("bench.rtt.", absl::Uniform<uint64_t>(rng));
  natsConnection* responder = nullptr;
  natsConnection* requester = nullptr;
  natsSubscription* sub = nullptr;
  natsStatus s = Connect(url, &responder);
  if (s == NATS_OK) s = Connect(url, &requester);
  if (s == NATS_OK) {
    s = natsConnection_Subscribe(&sub, responder, subject.c_str(), &Echo,
                                 nullptr);
  }
  // The subscription is known to the server once the flush returns.
  if (s == NATS_OK) s = natsConnection_Flush(responder);
  if (s != NATS_OK) {
    std::fprintf(stderr, "nats %s: %s\n", url.c_str(), natsStatus_GetText(s));
    return 1;
  }
  const std::string payload(static_cast<size_t>(payload_bytes), 'x');
  Histogram rtt;
  int failures = 0;
  for (int i = 0; i < warmup + count; ++i) {
    natsMsg* reply = nullptr;
    const int64_t sent = absl::GetCurrentTimeNanos();
    s = natsConnection_Request(&reply, requester, subject.c_str(),
                               payload.data(), payload_bytes, 1000);
    const int64_t received = absl::GetCurrentTimeNanos();
    if (s != NATS_OK) {
      if (++failures <= 10) {
        std::fprintf(stderr, "request failed: %s\n", natsStatus_GetText(s));
      }
      continue;
    }
    natsMsg_Destroy(reply);
    if (i >= warmup) rtt.Record(static_cast<double>(received - sent) / 1e3);
  }
  if (failures > 0) std::fprintf(stderr, "%d requests failed\n", failures);
  std::printf("RESULT {\"rtt_us\":%s}\n", rtt.ToJson().c_str());
  std::fflush(stdout);
  natsSubscription_Destroy(sub);
  natsConnection_Destroy(requester);
  natsConnection_Destroy(responder);
  nats_Close();
  return 0;
}

}  // namespace
}  // namespace bench
}  // namespace entitysync

int main(int argc, char** argv) {
  absl::ParseCommandLine(argc, argv);
  return entitysync::bench::Run();
}
