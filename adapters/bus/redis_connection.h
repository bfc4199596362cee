// One non-blocking hiredis connection and what it needs (Redis addresses,
// replies, SIGPIPE), for RedisBus (redis_bus.cc), whose bus thread alone uses
// them. Nothing here knows pub/sub or the bus: RedisBus speaks the protocol
// over two of these (a SUBSCRIBE and a PUBLISH connection).
#ifndef ENTITYSYNC_ADAPTERS_BUS_REDIS_CONNECTION_H_
#define ENTITYSYNC_ADAPTERS_BUS_REDIS_CONNECTION_H_

#include <initializer_list>
#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "hiredis/hiredis.h"

namespace entitysync {
namespace redis {

struct Address {
  std::string host;
  int port = 6379;

  std::string ToString() const;
};

// host:port, [v6]:port or redis://host:port[/db]; never one with
// credentials (the error does not echo it).
absl::StatusOr<Address> ParseAddress(absl::string_view text);

struct ReplyDeleter {
  void operator()(redisReply* reply) const { freeReplyObject(reply); }
};
using Reply = std::unique_ptr<redisReply, ReplyDeleter>;

inline absl::string_view Str(const redisReply& reply) {
  return absl::string_view(reply.str, reply.len);
}

inline bool IsString(const redisReply& reply) {
  return reply.type == REDIS_REPLY_STRING || reply.type == REDIS_REPLY_STATUS;
}

// hiredis writes with write(2): a peer that closed the connection raises
// SIGPIPE. The bus thread blocks it, so the write fails with EPIPE instead
// (Connection::Flush drops the pending signal).
void BlockSigpipeOnThisThread();

// One non-blocking hiredis connection. Used by one thread only.
class Connection {
 public:
  Connection() = default;
  Connection(const Connection&) = delete;
  Connection& operator=(const Connection&) = delete;
  ~Connection() { Close(); }

  // Starts a non-blocking TCP connect.
  bool Open(const Address& address, std::string* error);
  void Close();

  int fd() const { return context_->fd; }
  // The TCP connect is still in flight.
  bool connecting() const { return connecting_; }
  bool wants_write() const { return wants_write_; }
  short poll_events() const;

  // After poll reported the connecting socket writable (or failed).
  bool FinishConnect(std::string* error);
  // Queues one command.
  void Append(std::initializer_list<absl::string_view> args);
  // Writes what the socket takes now.
  bool Flush(std::string* error);
  // One read(2) into hiredis' reader.
  bool Read(std::string* error);
  // The next complete reply, or null when none is buffered.
  bool NextReply(Reply* reply, std::string* error);

 private:
  std::string Failure() const;

  redisContext* context_ = nullptr;
  std::string address_;
  bool connecting_ = false;
  bool wants_write_ = false;
};

}  // namespace redis
}  // namespace entitysync

#endif  // ENTITYSYNC_ADAPTERS_BUS_REDIS_CONNECTION_H_
