// A blocking WebSocket client for tests (Boost.Beast, synchronous): what a
// browser does on /ws/entity-sync/, with the subprotocol and the
// authorization header it chooses. Not thread-safe; one thread drives it.
#ifndef ENTITYSYNC_TESTS_E2E_WS_CLIENT_H_
#define ENTITYSYNC_TESTS_E2E_WS_CLIENT_H_

#include <sys/socket.h>
#include <sys/time.h>

#include <cstdint>
#include <optional>
#include <string>

#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "adapters/gateway/beast.h"
#include "nlohmann/json.hpp"

namespace entitysync::testing {

// A blocking WebSocket client; reads give up after `timeout`.
class WsClient {
 public:
  WsClient(int port, const std::string& subprotocol,
           absl::Duration timeout = absl::Seconds(10),
           const std::string& authorization = "")
      : ws_(io_) {
    ws_.next_layer().connect(gateway::tcp::endpoint(
        gateway::net::ip::make_address("127.0.0.1"), port));
    timeval tv{static_cast<time_t>(absl::ToInt64Seconds(timeout)), 0};
    setsockopt(ws_.next_layer().native_handle(), SOL_SOCKET, SO_RCVTIMEO, &tv,
               sizeof(tv));
    ws_.set_option(gateway::websocket::stream_base::decorator(
        [subprotocol,
         authorization](gateway::websocket::request_type& request) {
          if (!authorization.empty()) {
            request.set(gateway::beast::http::field::authorization,
                        authorization);
          }
          if (!subprotocol.empty()) {
            request.set(gateway::beast::http::field::sec_websocket_protocol,
                        subprotocol);
          }
        }));
    ws_.handshake(absl::StrCat("127.0.0.1:", port), "/ws/entity-sync/");
  }

  void Send(const std::string& text) {
    ws_.text(true);
    ws_.write(gateway::net::buffer(text));
  }

  // The next message, or nullopt when the connection closed (close_code()
  // tells how) or nothing came in time.
  std::optional<std::string> Read() {
    gateway::beast::flat_buffer buffer;
    gateway::beast::error_code error;
    ws_.read(buffer, error);
    if (error) {
      error_ = error;
      return std::nullopt;
    }
    return gateway::beast::buffers_to_string(buffer.data());
  }

  // Reads until an update for `id` with a version of at least `version`.
  std::optional<nlohmann::json> ReadUpdate(const std::string& id,
                                           uint64_t version) {
    while (std::optional<std::string> text = Read()) {
      nlohmann::json message = nlohmann::json::parse(*text, nullptr, false);
      if (message.value("type", "") == "update" && message["key"]["id"] == id &&
          message["version"].get<uint64_t>() >= version) {
        return message;
      }
    }
    return std::nullopt;
  }

  // Reads at most `bytes` more of the message being received into
  // `buffer`; true once that message is complete (then `buffer` holds it).
  // False with error() set when the connection closed.
  std::optional<bool> ReadSome(gateway::beast::flat_buffer& buffer,
                               size_t bytes) {
    gateway::beast::error_code error;
    ws_.read_some(buffer, bytes, error);
    if (error) {
      error_ = error;
      return std::nullopt;
    }
    return ws_.is_message_done();
  }

  int close_code() const { return ws_.reason().code; }
  int native_handle() { return ws_.next_layer().native_handle(); }
  gateway::beast::error_code error() const { return error_; }

 private:
  gateway::net::io_context io_;
  gateway::websocket::stream<gateway::tcp::socket> ws_;
  gateway::beast::error_code error_;
};

// The enveloped protocol's subscribe message for items/`id`.
inline std::string Subscribe(const std::string& id, int request_id) {
  return absl::StrCat(R"({"action":"subscribe","request_id":)", request_id,
                      R"(,"body":{"entity":"items","id":")", id, R"("}})");
}

}  // namespace entitysync::testing

#endif  // ENTITYSYNC_TESTS_E2E_WS_CLIENT_H_
