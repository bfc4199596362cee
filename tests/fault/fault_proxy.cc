#include "tests/fault/fault_proxy.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>

#include "absl/time/clock.h"

namespace entitysync::testing {
namespace {

constexpr int kPollMs = 10;

sockaddr_in Loopback(int port) {
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = htons(static_cast<uint16_t>(port));
  return addr;
}

// Writes everything (blocking socket); false when the peer is gone.
bool WriteAll(int fd, const char* data, size_t size) {
  while (size > 0) {
    const ssize_t n = send(fd, data, size, MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    data += n;
    size -= static_cast<size_t>(n);
  }
  return true;
}

void CloseWithReset(int fd) {
  if (fd < 0) return;
  linger l{1, 0};
  setsockopt(fd, SOL_SOCKET, SO_LINGER, &l, sizeof(l));
  close(fd);
}

}  // namespace

FaultProxy::FaultProxy(int target_port) : target_port_(target_port) {
  // CLOEXEC: a process the test forks must not hold the proxy's sockets
  // (a reset would then not reach the peer).
  listen_fd_ = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (listen_fd_ < 0) std::abort();
  int one = 1;
  setsockopt(listen_fd_, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
  sockaddr_in addr = Loopback(0);
  if (bind(listen_fd_, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0 ||
      listen(listen_fd_, 512) != 0) {
    std::abort();
  }
  socklen_t len = sizeof(addr);
  getsockname(listen_fd_, reinterpret_cast<sockaddr*>(&addr), &len);
  port_ = ntohs(addr.sin_port);
  acceptor_ = std::thread([this] { AcceptLoop(); });
}

FaultProxy::~FaultProxy() {
  stopping_ = true;
  acceptor_.join();
  close(listen_fd_);
  absl::MutexLock lock(&mu_);
  for (auto& c : connections_) c->thread.join();
}

void FaultProxy::Pass() { mode_ = Mode::kPass; }

void FaultProxy::Delay(absl::Duration delay) {
  delay_us_ = absl::ToInt64Microseconds(delay);
  mode_ = Mode::kDelay;
}

void FaultProxy::BlackHole() { mode_ = Mode::kBlackHole; }

void FaultProxy::Reset() {
  absl::MutexLock lock(&mu_);
  for (auto& c : connections_) c->reset = true;
}

void FaultProxy::HalfClose() {
  absl::MutexLock lock(&mu_);
  for (auto& c : connections_) c->half_close = true;
}

void FaultProxy::Refuse(bool refuse) { refuse_ = refuse; }

size_t FaultProxy::live() const {
  absl::MutexLock lock(&mu_);
  size_t n = 0;
  for (const auto& c : connections_) n += c->done ? 0 : 1;
  return n;
}

void FaultProxy::AcceptLoop() {
  while (!stopping_) {
    pollfd p{listen_fd_, POLLIN, 0};
    if (poll(&p, 1, kPollMs) <= 0) continue;
    const int client = accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC);
    if (client < 0) continue;
    ++accepted_;
    if (refuse_) {
      CloseWithReset(client);
      continue;
    }
    const int upstream = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in target = Loopback(target_port_);
    if (connect(upstream, reinterpret_cast<sockaddr*>(&target),
                sizeof(target)) != 0) {
      close(upstream);
      CloseWithReset(client);
      continue;
    }
    int one = 1;
    setsockopt(client, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    setsockopt(upstream, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    auto c = std::make_unique<Connection>();
    c->client = client;
    c->upstream = upstream;
    Connection* raw = c.get();
    absl::MutexLock lock(&mu_);
    connections_.push_back(std::move(c));
    raw->thread = std::thread([this, raw] { Forward(raw); });
  }
}

void FaultProxy::Forward(Connection* c) {
  char buffer[16 << 10];
  bool client_open = true;    // client -> upstream direction
  bool upstream_open = true;  // upstream -> client direction
  while (!stopping_ && !c->reset && (client_open || upstream_open)) {
    if (c->half_close.exchange(false) && client_open) {
      shutdown(c->upstream, SHUT_WR);
      client_open = false;
    }
    // A closed direction is left out (fd -1): poll would otherwise keep
    // reporting its hang-up.
    pollfd p[2] = {{client_open ? c->client : -1, POLLIN, 0},
                   {upstream_open ? c->upstream : -1, POLLIN, 0}};
    if (poll(p, 2, kPollMs) <= 0) continue;
    for (int i = 0; i < 2; ++i) {
      if ((p[i].revents & (POLLIN | POLLHUP | POLLERR)) == 0) continue;
      const int from = i == 0 ? c->client : c->upstream;
      const int to = i == 0 ? c->upstream : c->client;
      const ssize_t n = recv(from, buffer, sizeof(buffer), 0);
      if (n <= 0) {
        // EOF or error: pass the FIN on (unless black-holed: then nothing
        // crosses, not even the end), stop reading this side.
        if (mode_.load() != Mode::kBlackHole) shutdown(to, SHUT_WR);
        (i == 0 ? client_open : upstream_open) = false;
        continue;
      }
      switch (mode_.load()) {
        case Mode::kBlackHole:
          break;  // read and dropped: nothing arrives, nothing errors
        case Mode::kDelay:
          absl::SleepFor(absl::Microseconds(delay_us_.load()));
          [[fallthrough]];
        case Mode::kPass:
          if (!WriteAll(to, buffer, static_cast<size_t>(n))) {
            (i == 0 ? client_open : upstream_open) = false;
          }
          break;
      }
    }
  }
  if (c->reset) {
    CloseWithReset(c->client);
    CloseWithReset(c->upstream);
  } else {
    close(c->client);
    close(c->upstream);
  }
  c->done = true;
}

}  // namespace entitysync::testing
