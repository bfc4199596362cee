// GatewayStream: the bytes of one browser connection, plain TCP or TLS
// (--tls_cert_file on a replica hosting the gateway, --tls_cert_file on the
// standalone gateway), as one type for every connection class, so that a
// connection handed from one class to the next (HTTP request → WebSocket,
// long poll → keep-alive HTTP) keeps its TLS session.
//
// `Plain` is beast::tcp_stream for HTTP (its per-operation timeouts) or
// tcp::socket for a WebSocket (an idle plain connection holds nothing but
// its socket). The TLS layer is always over a tcp_stream, on the heap, and
// linearizes gathered writes (beast::flat_stream) so that a frame and its
// header, or several held frames, leave as one TLS record.
//
// Threading: as the connection that owns it (its strand).
#ifndef ENTITYSYNC_ADAPTERS_GATEWAY_GATEWAY_STREAM_H_
#define ENTITYSYNC_ADAPTERS_GATEWAY_GATEWAY_STREAM_H_

#include <boost/asio/ssl.hpp>
#include <boost/beast/core/flat_stream.hpp>
#include <boost/beast/websocket/ssl.hpp>
#include <chrono>
#include <memory>
#include <utility>

#include "absl/status/statusor.h"
#include "adapters/gateway/beast.h"

namespace entitysync {
namespace gateway {

namespace ssl = boost::asio::ssl;

using TlsStream = beast::flat_stream<ssl::stream<beast::tcp_stream>>;

// A server context from PEM files: the certificate chain and key, and,
// when `client_ca_file` is set, client certificates required and checked
// against those CAs (mutual TLS). Errors name the file, never its contents.
absl::StatusOr<std::unique_ptr<ssl::context>> MakeTlsContext(
    const std::string& cert_file, const std::string& key_file,
    const std::string& client_ca_file);

template <class Plain>
class GatewayStream {
 public:
  using executor_type = net::any_io_executor;

  explicit GatewayStream(Plain plain) : plain_(std::move(plain)) {}
  explicit GatewayStream(std::unique_ptr<TlsStream> tls)
      : plain_(tls->get_executor()), tls_(std::move(tls)) {}
  // A connection just accepted: TLS when `context` is set (call
  // async_handshake first).
  GatewayStream(tcp::socket socket, ssl::context* context)
      : plain_(context == nullptr ? Plain(std::move(socket))
                                  : Plain(socket.get_executor())) {
    if (context != nullptr) {
      tls_ = std::make_unique<TlsStream>(std::move(socket), *context);
    }
  }
  GatewayStream(GatewayStream&&) = default;
  GatewayStream& operator=(GatewayStream&&) = default;

  bool tls() const { return tls_ != nullptr; }
  executor_type get_executor() noexcept { return plain_.get_executor(); }

  tcp::socket& socket() {
    if (tls_ != nullptr) return tls_->next_layer().next_layer().socket();
    return SocketOf(plain_);
  }

  // The TLS handshake, as the server; only when tls().
  template <class Handler>
  void async_handshake(Handler&& handler) {
    tls_->next_layer().async_handshake(ssl::stream_base::server,
                                       std::forward<Handler>(handler));
  }

  template <class MutableBufferSequence, class ReadHandler>
  void async_read_some(const MutableBufferSequence& buffers,
                       ReadHandler&& handler) {
    if (tls_ != nullptr) {
      tls_->async_read_some(buffers, std::forward<ReadHandler>(handler));
    } else {
      plain_.async_read_some(buffers, std::forward<ReadHandler>(handler));
    }
  }

  template <class ConstBufferSequence, class WriteHandler>
  void async_write_some(const ConstBufferSequence& buffers,
                        WriteHandler&& handler) {
    if (tls_ != nullptr) {
      tls_->async_write_some(buffers, std::forward<WriteHandler>(handler));
    } else {
      plain_.async_write_some(buffers, std::forward<WriteHandler>(handler));
    }
  }

  // Timeouts of the operations started next (Plain = beast::tcp_stream).
  template <class Duration>
  void expires_after(Duration after) {
    timed().expires_after(after);
  }
  void expires_never() { timed().expires_never(); }

  // Closes the socket; pending operations fail.
  void close() {
    beast::error_code ignored;
    socket().close(ignored);
  }

  // The same connection as a WebSocket's stream (Plain = beast::tcp_stream):
  // a plain one keeps only its socket.
  GatewayStream<tcp::socket> ForWebSocket() && {
    if (tls_ != nullptr) {
      // The WebSocket has timeouts of its own; the HTTP request's deadline
      // would otherwise stay armed on every later read and write.
      tls_->next_layer().next_layer().expires_never();
      return GatewayStream<tcp::socket>(std::move(tls_));
    }
    return GatewayStream<tcp::socket>(plain_.release_socket());
  }

  // The WebSocket closing handshake's end (teardown, below).
  ssl::stream<beast::tcp_stream>* tls_layer() {
    return tls_ == nullptr ? nullptr : &tls_->next_layer();
  }

 private:
  static tcp::socket& SocketOf(tcp::socket& socket) { return socket; }
  static tcp::socket& SocketOf(beast::tcp_stream& stream) {
    return stream.socket();
  }
  beast::tcp_stream& timed() {
    if (tls_ != nullptr) return tls_->next_layer().next_layer();
    return plain_;
  }

  Plain plain_;  // unopened when TLS
  std::unique_ptr<TlsStream> tls_;
};

using HttpStream = GatewayStream<beast::tcp_stream>;
using WsStream = GatewayStream<tcp::socket>;

// What a websocket::stream over a GatewayStream needs (found by ADL).
template <class Plain>
void beast_close_socket(GatewayStream<Plain>& stream) {
  stream.close();
}

template <class Plain>
void teardown(beast::role_type role, GatewayStream<Plain>& stream,
              beast::error_code& error) {
  if (auto* tls = stream.tls_layer()) {
    beast::teardown(role, *tls, error);
    return;
  }
  websocket::teardown(role, stream.socket(), error);
}

template <class Plain, class TeardownHandler>
void async_teardown(beast::role_type role, GatewayStream<Plain>& stream,
                    TeardownHandler&& handler) {
  if (auto* tls = stream.tls_layer()) {
    beast::async_teardown(role, *tls, std::forward<TeardownHandler>(handler));
    return;
  }
  websocket::async_teardown(role, stream.socket(),
                            std::forward<TeardownHandler>(handler));
}

}  // namespace gateway
}  // namespace entitysync

#endif  // ENTITYSYNC_ADAPTERS_GATEWAY_GATEWAY_STREAM_H_
