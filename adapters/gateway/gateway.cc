#include "adapters/gateway/gateway.h"

#include <chrono>
#include <utility>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "adapters/gateway/http_session.h"

namespace entitysync {
namespace gateway {
namespace {

absl::StatusOr<tcp::endpoint> ParseEndpoint(const std::string& address) {
  const size_t colon = address.rfind(':');
  int port = 0;
  if (colon == std::string::npos ||
      !absl::SimpleAtoi(address.substr(colon + 1), &port) || port < 0 ||
      port > 65535) {
    return absl::InvalidArgumentError(
        absl::StrCat("address \"", address, "\" is not HOST:PORT"));
  }
  std::string host = address.substr(0, colon);
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']') {
    host = host.substr(1, host.size() - 2);
  }
  if (host.empty() || host == "*") host = "0.0.0.0";
  if (host == "localhost") host = "127.0.0.1";
  beast::error_code error;
  net::ip::address ip = net::ip::make_address(host, error);
  if (error) {
    return absl::InvalidArgumentError(absl::StrCat(
        "address \"", address, "\": \"", host, "\" is not an IP address"));
  }
  return tcp::endpoint(ip, static_cast<unsigned short>(port));
}

}  // namespace

Gateway::Gateway(GatewayOptions options, UpstreamPool::ChannelFactory channels,
                 SubscribeLinkFactory links)
    : state_(std::move(options), std::move(channels), std::move(links)),
      io_(state_.options.threads),
      acceptor_(net::make_strand(io_)),
      accept_retry_(acceptor_.get_executor()) {}

absl::StatusOr<std::unique_ptr<Gateway>> Gateway::Start(
    GatewayOptions options, UpstreamPool::ChannelFactory channels,
    SubscribeLinkFactory links) {
  const auto finite_positive = [](absl::Duration d) {
    return d > absl::ZeroDuration() && d < absl::InfiniteDuration();
  };
  if (options.threads < 1 || options.max_connections < 1 ||
      options.max_subscriptions < 1 || options.max_message_bytes < 16 ||
      !finite_positive(options.idle_timeout) ||
      !finite_positive(options.write_timeout) ||
      !finite_positive(options.request_timeout)) {
    return absl::InvalidArgumentError(
        "gateway options: threads, max_connections, max_subscriptions, "
        "max_message_bytes (>= 16) must be positive, and idle_timeout, "
        "write_timeout and request_timeout positive and finite");
  }
  absl::StatusOr<tcp::endpoint> endpoint = ParseEndpoint(options.address);
  if (!endpoint.ok()) return endpoint.status();
  if (channels == nullptr) {
    channels = UpstreamPool::TcpChannels(
        options.upstream, options.max_upstream_message_bytes,
        options.upstream_credentials, options.upstream_server_name);
  }
  std::unique_ptr<ssl::context> tls;
  if (!options.tls_cert_file.empty() || !options.tls_key_file.empty() ||
      !options.tls_client_ca_file.empty()) {
    absl::StatusOr<std::unique_ptr<ssl::context>> made =
        MakeTlsContext(options.tls_cert_file, options.tls_key_file,
                       options.tls_client_ca_file);
    if (!made.ok()) {
      return absl::InvalidArgumentError(
          absl::StrCat("gateway TLS: ", made.status().message()));
    }
    tls = *std::move(made);
  }
  std::unique_ptr<Gateway> gateway(
      new Gateway(std::move(options), std::move(channels), std::move(links)));
  gateway->state_.tls = std::move(tls);
  beast::error_code error;
  tcp::acceptor& acceptor = gateway->acceptor_;
  acceptor.open(endpoint->protocol(), error);
  if (!error) acceptor.set_option(net::socket_base::reuse_address(true), error);
  if (!error) acceptor.bind(*endpoint, error);
  if (!error) acceptor.listen(net::socket_base::max_listen_connections, error);
  if (error) {
    return absl::UnavailableError(absl::StrCat("gateway cannot listen on ",
                                               gateway->state_.options.address,
                                               ": ", error.message()));
  }
  gateway->port_ = acceptor.local_endpoint().port();
  gateway->DoAccept();
  for (int i = 0; i < gateway->state_.options.threads; ++i) {
    gateway->threads_.emplace_back([io = &gateway->io_] { io->run(); });
  }
  return gateway;
}

Gateway::~Gateway() { Stop(); }

void Gateway::DoAccept() {
  acceptor_.async_accept(net::make_strand(io_), [this](beast::error_code error,
                                                       tcp::socket socket) {
    if (error == net::error::operation_aborted || !acceptor_.is_open()) {
      return;
    }
    if (!error) {
      // Frames are small and latency-bound: without this, the second frame
      // of a burst (a snapshot after its `subscribed`, a legacy snapshot's
      // rows) waits ~40 ms for the browser's delayed ACK (Nagle).
      beast::error_code ignored;
      socket.set_option(tcp::no_delay(true), ignored);
      std::make_shared<HttpSession>(std::move(socket), &state_)->Run();
    }
    DoAccept();
  });
}

void Gateway::StopAccepting() {
  net::post(acceptor_.get_executor(), [this] {
    beast::error_code ignored;
    acceptor_.close(ignored);
    accept_retry_.cancel();
  });
}

void Gateway::Stop(absl::Duration grace) {
  if (stopped_) return;
  stopped_ = true;
  StopAccepting();
  state_.connections.ShutdownAll();
  const absl::Time deadline = absl::Now() + grace;
  while (state_.connections.size() > 0 && absl::Now() < deadline) {
    absl::SleepFor(absl::Milliseconds(10));
  }
  io_.stop();
  for (std::thread& thread : threads_) thread.join();
  threads_.clear();
  state_.connections.AbortAll();
  // Every stream has been cancelled; gRPC finishes each promptly. The pool,
  // its channels and io_ must outlive them (see UpstreamStream::OnDone), so
  // this waits as long as it takes.
  while (!state_.upstream.WaitUntilIdle(absl::Seconds(10))) {
  }
}

}  // namespace gateway
}  // namespace entitysync
