// CqFanoutServer: the fanout calibration on gRPC's async API, the best raw
// gRPC does for one key's fan-out on this machine (the design the replica's
// Subscribe streams use: server/transport/grpc). --io_threads threads each
// poll their own completion queue and own the calls accepted on it. Offer
// hands a change to each thread once (one task, one wake-up); the thread
// offers it to each of its calls: at most one write in flight per call, only
// the newest message pending. A read stays in flight to learn when the
// client goes. No lock is shared between the I/O threads.
//
// Serves the generic method of the fanout pattern (any method name).
// Thread-safe: Offer from any thread; Shutdown after the server's Shutdown.
#ifndef ENTITYSYNC_BENCH_CQ_FANOUT_SERVER_H_
#define ENTITYSYNC_BENCH_CQ_FANOUT_SERVER_H_

#include <memory>
#include <vector>

#include "grpcpp/generic/async_generic_service.h"
#include "grpcpp/server_builder.h"
#include "grpcpp/support/byte_buffer.h"
#include "server/transport/grpc/io_threads.h"

namespace entitysync {
namespace bench {

class CqFanoutServer {
 public:
  // Registers the service and `io_threads` completion queues on `builder`.
  CqFanoutServer(grpc::ServerBuilder* builder, int io_threads);
  ~CqFanoutServer();

  // After BuildAndStart: requests calls and starts the threads.
  void Start();
  void Offer(const grpc::ByteBuffer& message);
  void Shutdown();

 private:
  class Call;
  struct Thread;

  grpc::AsyncGenericService service_;
  IoThreads io_threads_;
  std::vector<std::unique_ptr<Thread>> threads_;
};

}  // namespace bench
}  // namespace entitysync

#endif  // ENTITYSYNC_BENCH_CQ_FANOUT_SERVER_H_
