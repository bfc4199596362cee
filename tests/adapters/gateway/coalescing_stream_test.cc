#include "adapters/gateway/coalescing_stream.h"

#include <chrono>
#include <string>
#include <thread>
#include <vector>

#include "adapters/gateway/beast.h"
#include "gtest/gtest.h"

namespace entitysync {
namespace gateway {
namespace {

// A connected loopback pair: `server` for the layer, `peer` read plainly.
struct Pair {
  net::io_context io;
  tcp::socket peer{io};
  CoalescingStream<beast::tcp_stream> server{io};

  Pair() {
    tcp::acceptor acceptor(
        io, tcp::endpoint(net::ip::make_address("127.0.0.1"), 0));
    peer.connect(acceptor.local_endpoint());
    acceptor.accept(server.next_layer().socket());
    server.next_layer().socket().set_option(tcp::no_delay(true));
  }

  // Writes `data` through the layer and runs until it completes.
  size_t Write(const std::string& data) {
    size_t written = 0;
    bool done = false;
    server.async_write_some(net::buffer(data),
                            [&](beast::error_code error, size_t n) {
                              EXPECT_FALSE(error) << error.message();
                              written = n;
                              done = true;
                            });
    io.restart();
    while (!done) io.run_one();
    return written;
  }
};

TEST(CoalescingStreamTest, HeldWritesLeaveWithTheNextInOneSend) {
  Pair pair;
  pair.server.hold(true);
  EXPECT_EQ(pair.Write("first,"), 6u);
  EXPECT_EQ(pair.Write("second,"), 7u);
  // Completed, yet nothing reached the socket.
  std::this_thread::sleep_for(std::chrono::milliseconds(50));
  EXPECT_EQ(pair.peer.available(), 0u);

  pair.server.hold(false);
  EXPECT_EQ(pair.Write("third"), 5u);
  // One send: the peer's first read has all of it.
  std::string got(64, '\0');
  size_t n = pair.peer.read_some(net::buffer(got));
  EXPECT_EQ(got.substr(0, n), "first,second,third");
}

TEST(CoalescingStreamTest, UnheldWritesGoStraightOut) {
  Pair pair;
  EXPECT_EQ(pair.Write("alone"), 5u);
  std::string got(16, '\0');
  size_t n = pair.peer.read_some(net::buffer(got));
  EXPECT_EQ(got.substr(0, n), "alone");
}

// The layer under a websocket::stream, as WsSession uses it: messages
// written held then flushed reach a Beast client whole and in order, and a
// close after held frames sends them first.
TEST(CoalescingStreamTest, WebSocketMessagesThroughTheLayerArriveInOrder) {
  net::io_context io;
  tcp::acceptor acceptor(io,
                         tcp::endpoint(net::ip::make_address("127.0.0.1"), 0));
  websocket::stream<CoalescingStream<beast::tcp_stream>> server(io);
  websocket::stream<tcp::socket> client(io);
  client.next_layer().connect(acceptor.local_endpoint());
  acceptor.accept(beast::get_lowest_layer(server).socket());
  std::thread client_thread([&] { client.handshake("localhost", "/"); });
  bool accepted = false;
  server.async_accept([&](beast::error_code error) {
    EXPECT_FALSE(error) << error.message();
    accepted = true;
  });
  while (!accepted) io.run_one();
  client_thread.join();

  const std::vector<std::string> messages = {"one", "two", "three"};
  for (size_t i = 0; i < messages.size(); ++i) {
    server.next_layer().hold(i + 1 < messages.size());
    bool done = false;
    server.async_write(net::buffer(messages[i]),
                       [&](beast::error_code error, size_t) {
                         EXPECT_FALSE(error) << error.message();
                         done = true;
                       });
    io.restart();
    while (!done) io.run_one();
  }
  // Held, then closed: the held frame goes out before the close frame.
  server.next_layer().hold(true);
  bool done = false;
  server.async_write(net::buffer(std::string("four")),
                     [&](beast::error_code, size_t) { done = true; });
  io.restart();
  while (!done) io.run_one();
  server.next_layer().hold(false);
  server.async_close(websocket::close_code::normal, [](beast::error_code) {});
  std::thread closer([&] {
    io.restart();
    io.run();
  });

  std::vector<std::string> got;
  beast::error_code error;
  for (;;) {
    beast::flat_buffer buffer;
    client.read(buffer, error);
    if (error) break;
    got.push_back(beast::buffers_to_string(buffer.data()));
  }
  closer.join();
  EXPECT_EQ(error, websocket::error::closed);
  EXPECT_EQ(got, (std::vector<std::string>{"one", "two", "three", "four"}));
}

}  // namespace
}  // namespace gateway
}  // namespace entitysync
