// DirectTarget: the gRPC target the benchmark tools use for a `host:port`
// flag value. Thread-safe.
#ifndef ENTITYSYNC_BENCH_DIRECT_TARGET_H_
#define ENTITYSYNC_BENCH_DIRECT_TARGET_H_

#include <string>

namespace entitysync {
namespace bench {

// "ipv4:host:port" for IPv4 literals, which skips name resolution (a
// resolver per channel adds up with 10,000 channels); `address` unchanged
// otherwise.
std::string DirectTarget(const std::string& address);

}  // namespace bench
}  // namespace entitysync

#endif  // ENTITYSYNC_BENCH_DIRECT_TARGET_H_
