#include "adapters/bus/redis_connection.h"

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <sys/socket.h>

#include <cerrno>
#include <cstring>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"

namespace entitysync {
namespace redis {
namespace {

void DropPendingSigpipe() {
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGPIPE);
  const timespec zero{0, 0};
  while (sigtimedwait(&set, nullptr, &zero) == SIGPIPE) {
  }
}

}  // namespace

std::string Address::ToString() const {
  return absl::StrContains(host, ':') ? absl::StrCat("[", host, "]:", port)
                                      : absl::StrCat(host, ":", port);
}

absl::StatusOr<Address> ParseAddress(absl::string_view text) {
  absl::string_view rest = absl::StripAsciiWhitespace(text);
  // Never echo an address that may carry a password.
  if (absl::StrContains(rest, '@')) {
    return absl::InvalidArgumentError(
        "a Redis address must not carry credentials; set the password "
        "separately");
  }
  if (!absl::ConsumePrefix(&rest, "redis://") &&
      absl::StrContains(rest, "://")) {
    return absl::InvalidArgumentError(
        absl::StrCat("unsupported Redis address \"", rest,
                     "\": only host:port or redis://host:port"));
  }
  // A database number does not matter: pub/sub ignores databases.
  if (const size_t slash = rest.find('/'); slash != absl::string_view::npos) {
    rest = rest.substr(0, slash);
  }
  Address address;
  absl::string_view port;
  if (absl::ConsumePrefix(&rest, "[")) {
    const size_t close = rest.find(']');
    if (close == absl::string_view::npos) {
      return absl::InvalidArgumentError(
          absl::StrCat("Redis address \"", text, "\": missing ']'"));
    }
    address.host = std::string(rest.substr(0, close));
    rest.remove_prefix(close + 1);
    if (!rest.empty() && !absl::ConsumePrefix(&rest, ":")) {
      return absl::InvalidArgumentError(
          absl::StrCat("Redis address \"", text, "\": expected :port"));
    }
    port = rest;
  } else {
    const size_t colon = rest.find(':');
    if (colon != absl::string_view::npos &&
        rest.find(':', colon + 1) != absl::string_view::npos) {
      return absl::InvalidArgumentError(absl::StrCat(
          "Redis address \"", text, "\": write IPv6 addresses as [addr]:port"));
    }
    address.host = std::string(rest.substr(0, colon));
    if (colon != absl::string_view::npos) port = rest.substr(colon + 1);
  }
  if (address.host.empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat("Redis address \"", text, "\": no host"));
  }
  if (!port.empty() && (!absl::SimpleAtoi(port, &address.port) ||
                        address.port <= 0 || address.port > 65535)) {
    return absl::InvalidArgumentError(
        absl::StrCat("Redis address \"", text, "\": bad port"));
  }
  return address;
}

void BlockSigpipeOnThisThread() {
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGPIPE);
  pthread_sigmask(SIG_BLOCK, &set, nullptr);
}

bool Connection::Open(const Address& address, std::string* error) {
  Close();
  context_ = redisConnectNonBlock(address.host.c_str(), address.port);
  if (context_ == nullptr || context_->err != 0) {
    *error = absl::StrCat("connecting to ", address.ToString(), ": ",
                          context_ ? context_->errstr : "out of memory");
    Close();
    return false;
  }
  const int one = 1;
  setsockopt(context_->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
  address_ = address.ToString();
  connecting_ = true;
  return true;
}

void Connection::Close() {
  if (context_ != nullptr) redisFree(context_);
  context_ = nullptr;
  connecting_ = false;
  wants_write_ = false;
}

short Connection::poll_events() const {
  if (connecting_) return POLLOUT;
  return static_cast<short>(wants_write_ ? POLLIN | POLLOUT : POLLIN);
}

bool Connection::FinishConnect(std::string* error) {
  int err = 0;
  socklen_t len = sizeof(err);
  if (getsockopt(context_->fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0) {
    err = errno;
  }
  if (err != 0) {
    *error = absl::StrCat("connecting to ", address_, ": ", strerror(err));
    return false;
  }
  connecting_ = false;
  return true;
}

void Connection::Append(std::initializer_list<absl::string_view> args) {
  std::vector<const char*> argv;
  std::vector<size_t> lengths;
  for (absl::string_view arg : args) {
    argv.push_back(arg.data());
    lengths.push_back(arg.size());
  }
  redisAppendCommandArgv(context_, static_cast<int>(argv.size()), argv.data(),
                         lengths.data());
  wants_write_ = true;
}

bool Connection::Flush(std::string* error) {
  int done = 0;
  if (redisBufferWrite(context_, &done) != REDIS_OK) {
    DropPendingSigpipe();
    *error = Failure();
    return false;
  }
  wants_write_ = done == 0;
  return true;
}

bool Connection::Read(std::string* error) {
  if (redisBufferRead(context_) != REDIS_OK) {
    *error = Failure();
    return false;
  }
  return true;
}

bool Connection::NextReply(Reply* reply, std::string* error) {
  void* raw = nullptr;
  if (redisGetReplyFromReader(context_, &raw) != REDIS_OK) {
    *error = Failure();
    return false;
  }
  reply->reset(static_cast<redisReply*>(raw));
  return true;
}

std::string Connection::Failure() const {
  return absl::StrCat("connection to Redis at ", address_, ": ",
                      context_->errstr);
}

}  // namespace redis
}  // namespace entitysync
