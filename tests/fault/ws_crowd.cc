// ws_crowd: a crowd of browser-like WebSocket clients in a process of its
// own, for the WebSocket fault tests (the test process cannot hold both
// ends of 10,000 connections under the file limit, and a crowd that dies
// at once is what SIGKILL of this process gives).
//
//   ws_crowd --ports=P1[,P2...] --connections=N --key=ID [--linger0]
//
// Every connection opens a WebSocket to the first port (/ws/entity-sync/,
// the enveloped JSON protocol), subscribes to items/ID and reads every
// message.
// When the server closes it (a drain's 1012, say), it reconnects to the
// next port within 300 ms and subscribes again, as the browser client does.
// Every 100 ms it prints one line:
//
//   STATE open=.. subscribed=.. reconnects=.. closed_1012=.. min_version=..
//
// min_version is the lowest version of the key any connection has seen (0
// while some connection has seen none since it subscribed). --linger0 makes
// the kernel reset every connection (RST) when the process dies instead of
// closing it. Runs until killed.
#include <sys/socket.h>

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/strings/str_cat.h"
#include "adapters/gateway/beast.h"
#include "nlohmann/json.hpp"

ABSL_FLAG(std::vector<std::string>, ports, {}, "Gateway ports on 127.0.0.1.");
ABSL_FLAG(int, connections, 1, "WebSocket connections.");
ABSL_FLAG(std::string, key, "1", "Id of the items key every one subscribes.");
ABSL_FLAG(bool, linger0, false, "Reset the connections when the process dies.");
ABSL_FLAG(int, max_connecting, 200, "Handshakes in flight at once.");

namespace entitysync::testing {
namespace {

namespace beast = gateway::beast;
namespace net = gateway::net;
namespace websocket = gateway::websocket;
using tcp = gateway::tcp;

struct Totals {
  int open = 0;
  int subscribed = 0;
  int reconnects = 0;
  int closed_1012 = 0;
};

class Crowd;

class Client : public std::enable_shared_from_this<Client> {
 public:
  Client(Crowd* crowd, int port_index)
      : crowd_(crowd), port_index_(port_index) {}
  void Connect();
  bool subscribed() const { return subscribed_; }
  uint64_t version() const { return version_; }

 private:
  void OnConnect(beast::error_code error);
  void OnHandshake(beast::error_code error);
  void Read();
  void OnRead(beast::error_code error);
  void Lost(beast::error_code error);

  Crowd* const crowd_;
  int port_index_;
  std::unique_ptr<websocket::stream<tcp::socket>> ws_;
  beast::flat_buffer buffer_;
  std::string request_;
  bool open_ = false;
  bool subscribed_ = false;
  uint64_t version_ = 0;
};

class Crowd {
 public:
  Crowd(std::vector<int> ports, std::string key, bool linger0,
        int max_connecting)
      : ports_(std::move(ports)),
        key_(std::move(key)),
        linger0_(linger0),
        max_connecting_(max_connecting),
        report_(io_) {}

  void Run(int connections) {
    for (int i = 0; i < connections; ++i) {
      clients_.push_back(std::make_shared<Client>(this, 0));
      waiting_.push_back(clients_.back());
    }
    StartWaiting();
    Report();
    io_.run();
  }

  net::io_context& io() { return io_; }
  int port(int index) const { return ports_[index % ports_.size()]; }
  int ports() const { return static_cast<int>(ports_.size()); }
  const std::string& key() const { return key_; }
  bool linger0() const { return linger0_; }
  Totals& totals() { return totals_; }
  std::mt19937& random() { return random_; }

  // Handshakes are paced: at most max_connecting in flight.
  void Queue(std::shared_ptr<Client> client) {
    waiting_.push_back(std::move(client));
    StartWaiting();
  }
  void HandshakeDone() {
    --connecting_;
    StartWaiting();
  }

 private:
  void StartWaiting() {
    while (connecting_ < max_connecting_ && !waiting_.empty()) {
      ++connecting_;
      std::shared_ptr<Client> next = std::move(waiting_.back());
      waiting_.pop_back();
      next->Connect();
    }
  }
  void Report() {
    uint64_t min_version = UINT64_MAX;
    for (const auto& c : clients_)
      min_version = std::min(min_version, c->version());
    std::printf(
        "STATE open=%d subscribed=%d reconnects=%d closed_1012=%d "
        "min_version=%llu\n",
        totals_.open, totals_.subscribed, totals_.reconnects,
        totals_.closed_1012,
        static_cast<unsigned long long>(clients_.empty() ? 0 : min_version));
    std::fflush(stdout);
    report_.expires_after(std::chrono::milliseconds(100));
    report_.async_wait([this](beast::error_code) { Report(); });
  }

  const std::vector<int> ports_;
  const std::string key_;
  const bool linger0_;
  const int max_connecting_;
  net::io_context io_;
  net::steady_timer report_;
  std::vector<std::shared_ptr<Client>> clients_;
  std::vector<std::shared_ptr<Client>> waiting_;
  int connecting_ = 0;
  Totals totals_;
  std::mt19937 random_{42};
};

void Client::Connect() {
  ws_ = std::make_unique<websocket::stream<tcp::socket>>(crowd_->io());
  ws_->next_layer().async_connect(
      tcp::endpoint(net::ip::make_address("127.0.0.1"),
                    crowd_->port(port_index_)),
      [self = shared_from_this()](beast::error_code error) {
        self->OnConnect(error);
      });
}

void Client::OnConnect(beast::error_code error) {
  if (error) {
    crowd_->HandshakeDone();
    return Lost(error);
  }
  if (crowd_->linger0()) {
    linger reset{1, 0};
    setsockopt(ws_->next_layer().native_handle(), SOL_SOCKET, SO_LINGER, &reset,
               sizeof(reset));
  }
  ws_->set_option(
      websocket::stream_base::decorator([](websocket::request_type& request) {
        request.set(beast::http::field::sec_websocket_protocol,
                    "entitysync.v1.json");
      }));
  ws_->async_handshake(absl::StrCat("127.0.0.1:", crowd_->port(port_index_)),
                       "/ws/entity-sync/",
                       [self = shared_from_this()](beast::error_code error) {
                         self->OnHandshake(error);
                       });
}

void Client::OnHandshake(beast::error_code error) {
  crowd_->HandshakeDone();
  if (error) return Lost(error);
  open_ = true;
  ++crowd_->totals().open;
  request_ = absl::StrCat(
      R"({"action":"subscribe","request_id":1,"body":{"entity":"items","id":")",
      crowd_->key(), R"("}})");
  ws_->text(true);
  ws_->async_write(net::buffer(request_),
                   // A failed write fails the read too, which reconnects.
                   [self = shared_from_this()](beast::error_code, size_t) {});
  Read();
}

void Client::Read() {
  ws_->async_read(buffer_,
                  [self = shared_from_this()](beast::error_code error, size_t) {
                    self->OnRead(error);
                  });
}

void Client::OnRead(beast::error_code error) {
  if (error) return Lost(error);
  nlohmann::json message = nlohmann::json::parse(
      beast::buffers_to_string(buffer_.data()), nullptr, false);
  buffer_.consume(buffer_.size());
  if (message.is_object()) {
    if (message.value("type", "") == "subscribed" && !subscribed_) {
      subscribed_ = true;
      ++crowd_->totals().subscribed;
    }
    if (message.value("type", "") == "update" &&
        message.value("version", uint64_t{0}) > version_) {
      version_ = message["version"].get<uint64_t>();
    }
  }
  Read();
}

// Reconnects to the next port after a jittered pause, as a browser does
// when it is told to go (1012) or loses the connection.
void Client::Lost(beast::error_code error) {
  if (!ws_) return;
  if (error == websocket::error::closed && ws_->reason().code == 1012) {
    ++crowd_->totals().closed_1012;
  }
  if (open_) --crowd_->totals().open;
  if (subscribed_) --crowd_->totals().subscribed;
  open_ = subscribed_ = false;
  version_ = 0;
  ws_.reset();
  ++crowd_->totals().reconnects;
  port_index_ = (port_index_ + 1) % crowd_->ports();
  auto timer = std::make_shared<net::steady_timer>(
      crowd_->io(), std::chrono::milliseconds(crowd_->random()() % 300));
  timer->async_wait([self = shared_from_this(), timer](beast::error_code) {
    self->crowd_->Queue(self);
  });
}

}  // namespace
}  // namespace entitysync::testing

int main(int argc, char** argv) {
  absl::ParseCommandLine(argc, argv);
  std::vector<int> ports;
  for (const std::string& p : absl::GetFlag(FLAGS_ports)) {
    ports.push_back(std::stoi(p));
  }
  if (ports.empty()) {
    std::fprintf(stderr, "ws_crowd: --ports is required\n");
    return 2;
  }
  entitysync::testing::Crowd crowd(std::move(ports), absl::GetFlag(FLAGS_key),
                                   absl::GetFlag(FLAGS_linger0),
                                   absl::GetFlag(FLAGS_max_connecting));
  crowd.Run(absl::GetFlag(FLAGS_connections));
  return 0;
}
