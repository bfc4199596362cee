// BenchResolver: the load generator's Resolver service. Every key exists;
// each answer carries the key's current VersionTable entry as the version
// and as a RowStamp at the start of its single row, so the load generator
// can compute delivery latency from what the client receives. Counts calls
// and keys in total, per caller (peer address, i.e. per replica connection)
// and per ResolveRequest.reason.
//
// Callback API; never blocks a gRPC thread: with a delay, the answer (built
// when the call arrives) is sent from a gRPC alarm. Thread-safe. The
// KeySpace and VersionTable must outlive the service.
#ifndef ENTITYSYNC_BENCH_BENCH_RESOLVER_H_
#define ENTITYSYNC_BENCH_BENCH_RESOLVER_H_

#include <array>
#include <atomic>
#include <cstdint>
#include <map>
#include <string>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "bench/key_space.h"
#include "bench/version_table.h"
#include "entitysync/v1/resolver.grpc.pb.h"

namespace entitysync {
namespace bench {

struct BenchResolverOptions {
  // Total bytes of the row, stamp included (at least 16).
  size_t row_bytes = 100;
  // Answer each call after this long.
  absl::Duration delay = absl::ZeroDuration();
};

class BenchResolver final : public v1::Resolver::CallbackService {
 public:
  BenchResolver(const KeySpace* keys, const VersionTable* table,
                BenchResolverOptions options);

  // {"calls":n,"keys":n,"calls_by_peer":{"<peer>":n,...},
  //  "calls_by_reason":{"SUBSCRIBE":n,...}}
  std::string StatsJson() const;

 private:
  grpc::ServerUnaryReactor* Resolve(grpc::CallbackServerContext* context,
                                    const v1::ResolveRequest* request,
                                    v1::ResolveResponse* response) override;

  // Const after construction.
  const KeySpace* const keys_;
  const VersionTable* const table_;
  const BenchResolverOptions options_;

  std::atomic<uint64_t> calls_{0};
  std::atomic<uint64_t> resolved_keys_{0};
  // Indexed by ResolveRequest::Reason; unknown values count as 0.
  std::array<std::atomic<uint64_t>, 4> calls_by_reason_{};
  mutable absl::Mutex mu_;
  std::map<std::string, uint64_t> calls_by_peer_ ABSL_GUARDED_BY(mu_);
};

}  // namespace bench
}  // namespace entitysync

#endif  // ENTITYSYNC_BENCH_BENCH_RESOLVER_H_
