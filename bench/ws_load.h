// The load generator's WebSocket client (--transport=websocket): one
// WsLoadConnection is one browser-like WebSocket to a gateway's
// /ws/entity-sync/ in the binary protocol (entitysync.v1.proto), carrying one
// stream: it subscribes to its keys and measures every update exactly as a
// gRPC LoadStream does (SubscriptionBook), so the two transports are
// measured side by side by the same code. Boost.Beast, no Node in the
// measured path.
//
// Threading: every connection runs on a WsClientThreads' io_context, on its
// own strand; the control thread only starts and cancels (posted).
#ifndef ENTITYSYNC_BENCH_WS_LOAD_H_
#define ENTITYSYNC_BENCH_WS_LOAD_H_

#include <atomic>
#include <cstdint>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "bench/load_streams.h"
#include "boost/asio.hpp"

namespace entitysync {
namespace bench {

// The threads the WebSocket connections run on; outlives them.
class WsClientThreads {
 public:
  explicit WsClientThreads(int threads);
  ~WsClientThreads();  // stops and joins
  boost::asio::io_context& io() { return io_; }

 private:
  boost::asio::io_context io_;
  boost::asio::executor_work_guard<boost::asio::io_context::executor_type>
      work_;
  std::vector<std::thread> threads_;
};

class WsLoadConnection final : public Connection {
 public:
  // Stream `index` over a WebSocket to `target` (host:port).
  WsLoadConnection(const StreamEnvironment* env, WsClientThreads* threads,
                   const std::string& target, uint64_t index, bool initial);
  ~WsLoadConnection() override;

  void Start() override;
  void Cancel() override;
  void ResumeStalled() override {}  // never stalled
  uint64_t subscriptions() const override;
  bool Done() const override;

 private:
  class Socket;
  std::shared_ptr<Socket> socket_;
};

}  // namespace bench
}  // namespace entitysync

#endif  // ENTITYSYNC_BENCH_WS_LOAD_H_
