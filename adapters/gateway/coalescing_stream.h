// CoalescingStream: a stream layer under a websocket::stream that lets the
// frames of several messages leave in one socket write. Beast writes one
// message per async_write; a connection with several frames waiting (the
// rows of a legacy snapshot, `subscribed` and its snapshot, a batch of
// updates) would make one send() each. Instead the connection holds the
// layer while it writes all but the last: a held write copies its bytes and
// completes at once, and the next write that is not held goes out together
// with them in one gathered write.
//
// Beast serializes its writes (messages, pings, pongs, close), so a control
// frame Beast writes while the layer is held is held with the rest and goes
// out in the same flush. Reads pass straight through.
//
// Threading: that of the stream under it (the connection's strand).
#ifndef ENTITYSYNC_ADAPTERS_GATEWAY_COALESCING_STREAM_H_
#define ENTITYSYNC_ADAPTERS_GATEWAY_COALESCING_STREAM_H_

#include <cstddef>
#include <string>
#include <utility>

#include "adapters/gateway/beast.h"

namespace entitysync {
namespace gateway {

template <class NextLayer>
class CoalescingStream {
 public:
  using next_layer_type = NextLayer;
  using executor_type = typename NextLayer::executor_type;

  template <class... Args>
  explicit CoalescingStream(Args&&... args)
      : next_(std::forward<Args>(args)...) {}

  executor_type get_executor() noexcept { return next_.get_executor(); }
  NextLayer& next_layer() noexcept { return next_; }
  const NextLayer& next_layer() const noexcept { return next_; }

  // While held, writes wait to go out with the first write after it is
  // released. The connection holds only while it has frames queued, so a
  // flush always follows.
  void hold(bool held) { held_ = held; }
  bool held() const { return held_; }

  template <class MutableBufferSequence, class ReadHandler>
  auto async_read_some(const MutableBufferSequence& buffers,
                       ReadHandler&& handler) {
    return next_.async_read_some(buffers, std::forward<ReadHandler>(handler));
  }

  template <class ConstBufferSequence, class WriteHandler>
  auto async_write_some(const ConstBufferSequence& buffers,
                        WriteHandler&& handler) {
    return net::async_initiate<WriteHandler,
                               void(beast::error_code, std::size_t)>(
        [this](auto handler, const ConstBufferSequence& buffers) {
          StartWrite(buffers, std::move(handler));
        },
        handler, buffers);
  }

 private:
  template <class ConstBufferSequence, class Handler>
  void StartWrite(const ConstBufferSequence& buffers, Handler handler) {
    const std::size_t size = net::buffer_size(buffers);
    if (held_) {
      const std::size_t at = pending_.size();
      pending_.resize(at + size);
      net::buffer_copy(net::buffer(&pending_[at], size), buffers);
      // Completes as the write of the whole buffer, never inline.
      net::post(get_executor(),
                beast::bind_front_handler(std::move(handler),
                                          beast::error_code(), size));
      return;
    }
    if (pending_.empty()) {
      next_.async_write_some(buffers, std::move(handler));
      return;
    }
    // The flush: what was held, then these bytes, in one gathered write.
    // Beast's write is complete only once all of them are out, so the
    // whole of it is written (async_write), and `buffers` reported.
    const auto executor = net::get_associated_executor(handler, get_executor());
    net::async_write(
        next_, beast::buffers_cat(net::buffer(pending_), buffers),
        net::bind_executor(executor,
                           [this, size, handler = std::move(handler)](
                               beast::error_code error, std::size_t) mutable {
                             // An idle connection holds no buffer.
                             std::string().swap(pending_);
                             std::move(handler)(error, error ? 0 : size);
                           }));
  }

  NextLayer next_;
  std::string pending_;  // the held bytes
  bool held_ = false;
};

// Beast's websocket stream ends a connection through these (found by ADL).
template <class NextLayer>
void teardown(beast::role_type role, CoalescingStream<NextLayer>& stream,
              beast::error_code& error) {
  using websocket::teardown;
  teardown(role, stream.next_layer(), error);
}

template <class NextLayer, class TeardownHandler>
void async_teardown(beast::role_type role, CoalescingStream<NextLayer>& stream,
                    TeardownHandler&& handler) {
  using websocket::async_teardown;
  async_teardown(role, stream.next_layer(),
                 std::forward<TeardownHandler>(handler));
}

}  // namespace gateway
}  // namespace entitysync

#endif  // ENTITYSYNC_ADAPTERS_GATEWAY_COALESCING_STREAM_H_
