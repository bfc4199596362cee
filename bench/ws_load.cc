#include "bench/ws_load.h"

#include <cstdio>
#include <utility>

#include "absl/strings/numbers.h"
#include "absl/strings/str_split.h"
#include "boost/beast/core.hpp"
#include "boost/beast/websocket.hpp"
#include "grpcpp/support/byte_buffer.h"
#include "grpcpp/support/slice.h"

namespace entitysync {
namespace bench {

namespace net = boost::asio;
namespace beast = boost::beast;
namespace websocket = boost::beast::websocket;
using tcp = net::ip::tcp;

WsClientThreads::WsClientThreads(int threads)
    : work_(net::make_work_guard(io_)) {
  for (int i = 0; i < threads; ++i) {
    threads_.emplace_back([this] { io_.run(); });
  }
}

WsClientThreads::~WsClientThreads() {
  work_.reset();
  io_.stop();
  for (std::thread& thread : threads_) thread.join();
}

class WsLoadConnection::Socket : public std::enable_shared_from_this<Socket> {
 public:
  Socket(const StreamEnvironment* env, net::io_context& io, std::string target,
         uint64_t index, bool initial)
      : env_(env),
        target_(std::move(target)),
        ws_(net::make_strand(io)),
        book_(env, index, initial, /*stalled=*/false) {}

  size_t subscriptions() const { return book_.size(); }
  bool done() const { return done_.load(std::memory_order_acquire); }

  void Start() {
    net::post(ws_.get_executor(),
              [self = shared_from_this()] { self->Connect(); });
  }

  void Cancel() {
    cancelled_.store(true, std::memory_order_relaxed);
    net::post(ws_.get_executor(), [self = shared_from_this()] {
      beast::get_lowest_layer(self->ws_).close();
    });
  }

 private:
  void Connect() {
    std::vector<std::string> parts = absl::StrSplit(target_, ':');
    int port = 0;
    beast::error_code error;
    const auto address =
        net::ip::make_address(parts.empty() ? "" : parts[0], error);
    if (parts.size() != 2 || !absl::SimpleAtoi(parts[1], &port) || error) {
      End(beast::error_code(net::error::invalid_argument));
      return;
    }
    beast::get_lowest_layer(ws_).async_connect(
        tcp::endpoint(address, static_cast<uint16_t>(port)),
        [self = shared_from_this()](beast::error_code error) {
          self->OnConnect(error);
        });
  }

  void OnConnect(beast::error_code error) {
    if (error) {
      End(error);
      return;
    }
    beast::get_lowest_layer(ws_).socket().set_option(tcp::no_delay(true));
    const std::string credentials = env_->credentials;
    ws_.set_option(websocket::stream_base::decorator(
        [credentials](websocket::request_type& request) {
          request.set(beast::http::field::sec_websocket_protocol,
                      "entitysync.v1.proto");
          if (!credentials.empty()) {
            request.set(beast::http::field::authorization, credentials);
          }
        }));
    ws_.binary(true);
    ws_.async_handshake(target_, "/ws/entity-sync/",
                        [self = shared_from_this()](beast::error_code error) {
                          self->OnHandshake(error);
                        });
  }

  void OnHandshake(beast::error_code error) {
    if (error) {
      End(error);
      return;
    }
    Read();
    WriteSubscribe(0);
  }

  void WriteSubscribe(size_t i) {
    if (i >= book_.size()) return;
    write_buffer_ = book_.SubscribeRequest(i).SerializeAsString();
    ws_.async_write(
        net::buffer(write_buffer_),
        [self = shared_from_this(), i](beast::error_code error, size_t) {
          if (!error) self->WriteSubscribe(i + 1);
        });
  }

  void Read() {
    ws_.async_read(read_buffer_, [self = shared_from_this()](
                                     beast::error_code error, size_t) {
      self->OnRead(error);
    });
  }

  void OnRead(beast::error_code error) {
    if (error) {
      End(error);
      return;
    }
    // The frame is one serialized SubscribeResponse; read in place.
    const auto data = read_buffer_.cdata();
    grpc::Slice slice(data.data(), data.size(), grpc::Slice::STATIC_SLICE);
    grpc::ByteBuffer bytes(&slice, 1);
    book_.HandleResponses(&bytes);
    read_buffer_.consume(read_buffer_.size());
    Read();
  }

  void End(beast::error_code error) {
    if (done_.load(std::memory_order_relaxed)) return;
    const bool cancelled = cancelled_.load(std::memory_order_relaxed);
    std::string message = error.message();
    if (ws_.reason().code != websocket::close_code::none) {
      message =
          "closed " + std::to_string(ws_.reason().code) + ": " +
          std::string(ws_.reason().reason.data(), ws_.reason().reason.size());
    }
    book_.OnEnd(cancelled, error.value(), message);
    beast::get_lowest_layer(ws_).close();
    done_.store(true, std::memory_order_release);
  }

  const StreamEnvironment* const env_;
  const std::string target_;
  websocket::stream<beast::tcp_stream> ws_;
  SubscriptionBook book_;
  beast::flat_buffer read_buffer_;
  std::string write_buffer_;
  std::atomic<bool> cancelled_{false};
  std::atomic<bool> done_{false};
};

WsLoadConnection::WsLoadConnection(const StreamEnvironment* env,
                                   WsClientThreads* threads,
                                   const std::string& target, uint64_t index,
                                   bool initial)
    : socket_(std::make_shared<Socket>(env, threads->io(), target, index,
                                       initial)) {}

WsLoadConnection::~WsLoadConnection() = default;

void WsLoadConnection::Start() { socket_->Start(); }
void WsLoadConnection::Cancel() { socket_->Cancel(); }
uint64_t WsLoadConnection::subscriptions() const {
  return socket_->subscriptions();
}
bool WsLoadConnection::Done() const { return socket_->done(); }

}  // namespace bench
}  // namespace entitysync
