#include "bench/bench_resolver.h"

#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "bench/json.h"
#include "bench/row_stamp.h"
#include "grpcpp/alarm.h"

namespace entitysync {
namespace bench {

BenchResolver::BenchResolver(const KeySpace* keys, const VersionTable* table,
                             BenchResolverOptions options)
    : keys_(keys), table_(table), options_(std::move(options)) {}

grpc::ServerUnaryReactor* BenchResolver::Resolve(
    grpc::CallbackServerContext* context, const v1::ResolveRequest* request,
    v1::ResolveResponse* response) {
  calls_.fetch_add(1, std::memory_order_relaxed);
  resolved_keys_.fetch_add(request->keys_size(), std::memory_order_relaxed);
  const int reason = request->reason();
  calls_by_reason_[reason >= 0 &&
                           reason < static_cast<int>(calls_by_reason_.size())
                       ? reason
                       : 0]
      .fetch_add(1, std::memory_order_relaxed);
  {
    std::string peer = context->peer();
    absl::MutexLock lock(&mu_);
    ++calls_by_peer_[std::move(peer)];
  }

  response->mutable_results()->Reserve(request->keys_size());
  for (const v1::EntityKey& key : request->keys()) {
    v1::ResolvedKey* result = response->add_results();
    *result->mutable_key() = key;
    result->set_status(v1::ResolvedKey::FOUND);
    // Ids outside the key space (none in the load generator's own runs)
    // get the initial state.
    const std::optional<uint64_t> index = keys_->Index(key.id());
    const RowStamp stamp =
        index ? table_->Get(*index) : RowStamp{/*version=*/1, 0};
    result->set_version(stamp.version);
    v1::Row* row = result->add_rows();
    row->set_content_type("application/octet-stream");
    row->set_data(EncodeRow(stamp, options_.row_bytes));
  }

  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  if (options_.delay <= absl::ZeroDuration()) {
    reactor->Finish(grpc::Status::OK);
    return reactor;
  }
  // The alarm deletes itself from its own callback, which gRPC allows: the
  // callback holds a reference to the alarm's state until it returns.
  auto* alarm = new grpc::Alarm;
  alarm->Set(absl::ToChronoTime(absl::Now() + options_.delay),
             [reactor, alarm](bool) {
               reactor->Finish(grpc::Status::OK);
               delete alarm;
             });
  return reactor;
}

std::string BenchResolver::StatsJson() const {
  std::string json =
      absl::StrCat("{\"calls\":", calls_.load(std::memory_order_relaxed),
                   ",\"keys\":", resolved_keys_.load(std::memory_order_relaxed),
                   ",\"calls_by_peer\":{");
  {
    absl::MutexLock lock(&mu_);
    const char* sep = "";
    for (const auto& [peer, calls] : calls_by_peer_) {
      absl::StrAppend(&json, sep, JsonString(peer), ":", calls);
      sep = ",";
    }
  }
  absl::StrAppend(&json, "},\"calls_by_reason\":{");
  const char* sep = "";
  for (size_t i = 0; i < calls_by_reason_.size(); ++i) {
    const uint64_t n = calls_by_reason_[i].load(std::memory_order_relaxed);
    if (n == 0) continue;
    absl::StrAppend(&json, sep,
                    JsonString(v1::ResolveRequest::Reason_Name(
                        static_cast<v1::ResolveRequest::Reason>(i))),
                    ":", n);
    sep = ",";
  }
  absl::StrAppend(&json, "}}");
  return json;
}

}  // namespace bench
}  // namespace entitysync
