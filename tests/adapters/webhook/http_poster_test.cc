#include "adapters/webhook/http_poster.h"

#include <boost/asio.hpp>
#include <future>
#include <memory>
#include <sstream>
#include <string>
#include <thread>

#include "adapters/webhook/http_url.h"
#include "gtest/gtest.h"

namespace entitysync::webhook {
namespace {

namespace net = boost::asio;
using tcp = net::ip::tcp;

// A real TCP server on a free port that answers one request with `status`
// and a body of `body_size` bytes, chunked (then waits for the client to
// close) or delimited by closing the connection. (Boost 1.74 does not apply
// body_limit to a Content-Length body.)
class OneShotServer {
 public:
  OneShotServer(int status, size_t body_size, bool chunked)
      : acceptor_(io_, tcp::endpoint(net::ip::make_address("127.0.0.1"), 0)) {
    port_ = acceptor_.local_endpoint().port();
    thread_ = std::thread([this, status, body_size, chunked] {
      boost::system::error_code error;
      tcp::socket socket(io_);
      acceptor_.accept(socket, error);
      if (error) return;
      net::streambuf request;
      net::read_until(socket, request, "\r\n\r\n", error);
      std::string answer = "HTTP/1.1 " + std::to_string(status) + " X\r\n";
      if (chunked) {
        std::ostringstream size;
        size << std::hex << body_size;
        answer += "Transfer-Encoding: chunked\r\n\r\n" + size.str() + "\r\n" +
                  std::string(body_size, 'x') + "\r\n0\r\n\r\n";
      } else {  // the body ends with the connection
        answer += "Connection: close\r\n\r\n" + std::string(body_size, 'x');
      }
      net::write(socket, net::buffer(answer), error);
      if (chunked) {
        char byte;
        socket.read_some(net::buffer(&byte, 1), error);  // until closed
      }
    });
  }
  ~OneShotServer() {
    boost::system::error_code ignored;
    acceptor_.close(ignored);
    thread_.join();
  }
  int port() const { return port_; }

 private:
  net::io_context io_;
  tcp::acceptor acceptor_;
  int port_ = 0;
  std::thread thread_;
};

PostResult PostOnce(int port) {
  net::io_context io;
  HttpUrl url;
  url.host = "127.0.0.1";
  url.port = std::to_string(port);
  url.host_header = "127.0.0.1:" + url.port;
  auto poster = std::make_shared<HttpPoster>(net::make_strand(io), url,
                                             absl::Seconds(20), 2);
  PostResult result;
  net::post(io, [&] {
    poster->Post("{}", {}, [&](PostResult r) { result = std::move(r); });
  });
  io.run();
  return result;
}

TEST(HttpPosterTest, A2xxWithABodyPastTheLimitIsStillA2xx) {
  OneShotServer server(200, (1 << 20) + 4096, /*chunked=*/true);
  const PostResult result = PostOnce(server.port());
  EXPECT_EQ(result.status, 200) << result.error;
}

TEST(HttpPosterTest, A5xxWithABodyPastTheLimitKeepsItsStatus) {
  OneShotServer server(503, 2 << 20, /*chunked=*/false);
  const PostResult result = PostOnce(server.port());
  EXPECT_EQ(result.status, 503) << result.error;
}

}  // namespace
}  // namespace entitysync::webhook
