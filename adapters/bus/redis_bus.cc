#include "adapters/bus/redis_bus.h"

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <cstring>
#include <deque>
#include <initializer_list>
#include <thread>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/random/random.h"
#include "absl/status/statusor.h"
#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "absl/strings/strip.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "adapters/bus/redis_connection.h"
#include "adapters/bus/subject_token.h"
#include "hiredis/hiredis.h"

namespace entitysync {
namespace {

// Redis glob patterns treat these specially; a backslash makes them literal.
std::string EscapeGlob(absl::string_view text) {
  std::string out;
  for (char c : text) {
    if (c == '*' || c == '?' || c == '[' || c == ']' || c == '\\') {
      out.push_back('\\');
    }
    out.push_back(c);
  }
  return out;
}

// A channel (SUBSCRIBE) or a pattern (PSUBSCRIBE).
struct Topic {
  bool pattern = false;
  std::string name;

  bool operator==(const Topic& other) const {
    return pattern == other.pattern && name == other.name;
  }
  template <typename H>
  friend H AbslHashValue(H h, const Topic& topic) {
    return H::combine(std::move(h), topic.pattern, topic.name);
  }
};

using redis::Address;
using redis::Connection;
using redis::IsString;
using redis::ParseAddress;
using redis::Reply;
using redis::Str;

}  // namespace

class RedisBus : public Bus {
 public:
  explicit RedisBus(RedisBusOptions options);
  ~RedisBus() override;

  absl::Status Start(BusHandlers handlers) override;
  absl::Status Publish(const v1::Notice& notice) override;
  void AddInterest(const std::string& entity, const std::string& id) override;
  void RemoveInterest(const std::string& entity,
                      const std::string& id) override;
  BusState state() const override { return state_.load(); }
  void Stop() override;

 private:
  struct QueuedPublish {
    std::string channel;
    std::string payload;
  };
  // What the publishing connection's next replies answer, in order.
  enum class Expect { kAuth, kHello, kPing, kPublish };

  Topic TopicFor(const std::string& entity, const std::string& id) const;
  void Wake();

  // The bus thread and what it calls.
  void Run();
  void OpenSession(absl::Time now);
  void CloseSession();
  void Fail(const std::string& reason);
  void Step(absl::Time now);
  absl::Time NextDeadline() const;
  void HandleEvents(bool publisher, short revents, absl::Time now);
  void OnTcpConnected(bool publisher, absl::Time now);
  bool HandlePublisherReply(const redisReply& reply, absl::Time now,
                            std::string* error);
  bool HandleSubscriberReply(const redisReply& reply, absl::Time now,
                             std::string* error);
  void Deliver(Topic topic, absl::string_view channel,
               absl::string_view payload);
  void SendPublishes(absl::Time now);
  void SendInterestChanges();
  void MaybeConnected();
  void SetState(BusState state);
  void ReportError(const std::string& reason);
  std::string CurrentAddress() const {
    return addresses_[address_index_].ToString();
  }

  // Const after construction (addresses_ and handlers_: after Start, before
  // the bus thread starts).
  const RedisBusOptions options_;
  const int wake_fd_;
  std::vector<Address> addresses_;
  BusHandlers handlers_;

  std::atomic<BusState> state_{BusState::kDisconnected};
  std::atomic<bool> stopping_{false};
  // Set by the first Wake after the bus thread last drained wake_fd_.
  std::atomic<bool> wake_pending_{false};

  absl::Mutex lifecycle_mu_;
  bool started_ ABSL_GUARDED_BY(lifecycle_mu_) = false;
  std::thread thread_ ABSL_GUARDED_BY(lifecycle_mu_);

  absl::Mutex interest_mu_;
  absl::flat_hash_map<Topic, int> interest_ ABSL_GUARDED_BY(interest_mu_);
  // Topics whose wanted-ness may have changed since the bus thread last
  // looked; it (un)subscribes them while connected.
  absl::flat_hash_set<Topic> changed_ ABSL_GUARDED_BY(interest_mu_);

  absl::Mutex queue_mu_;
  // Not yet answered by Redis; the first `sent_` are written on the current
  // publishing connection.
  std::deque<QueuedPublish> queue_ ABSL_GUARDED_BY(queue_mu_);
  size_t queued_bytes_ ABSL_GUARDED_BY(queue_mu_) = 0;
  size_t sent_ ABSL_GUARDED_BY(queue_mu_) = 0;

  // Bus thread only.
  Connection publisher_, subscriber_;
  bool session_ = false;  // both connections opened
  bool connected_ = false;
  absl::Time connect_deadline_;
  absl::Time next_attempt_;
  size_t address_index_ = 0;
  // Reasons reported during the current outage (a few, to keep logs short).
  absl::flat_hash_set<std::string> reported_errors_;
  absl::BitGen bitgen_;
  std::deque<Expect> publisher_expects_;
  // Last reply, or when the first of the outstanding commands was sent.
  absl::Time publisher_progress_;
  bool publisher_ready_ = false;
  // Subscriptions sent on the current connection.
  absl::flat_hash_set<Topic> subscribed_;
  bool subscriber_auth_pending_ = false;
  bool subscriber_synced_ = false;  // every wanted topic was sent
  bool subscriber_ready_ = false;   // ... and confirmed
  bool ping_outstanding_ = false;
  absl::Time ping_sent_;
  absl::Time last_pong_;
  absl::Time subscriber_last_read_;
};

RedisBus::RedisBus(RedisBusOptions options)
    : options_(std::move(options)),
      wake_fd_(eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC)) {}

RedisBus::~RedisBus() {
  Stop();
  if (wake_fd_ >= 0) close(wake_fd_);
}

absl::Status RedisBus::Start(BusHandlers handlers) {
  absl::MutexLock lock(&lifecycle_mu_);
  if (started_) return absl::FailedPreconditionError("bus already started");
  if (wake_fd_ < 0) {
    return absl::InternalError(
        absl::StrCat("eventfd for the Redis bus: ", strerror(errno)));
  }
  if (options_.addresses.empty()) {
    return absl::InvalidArgumentError("no Redis address");
  }
  for (const std::string& text : options_.addresses) {
    absl::StatusOr<Address> address = ParseAddress(text);
    if (!address.ok()) return address.status();
    addresses_.push_back(*std::move(address));
  }
  started_ = true;
  handlers_ = std::move(handlers);
  thread_ = std::thread([this] { Run(); });
  return absl::OkStatus();
}

void RedisBus::Stop() {
  absl::MutexLock lock(&lifecycle_mu_);
  stopping_ = true;
  Wake();
  if (thread_.joinable()) thread_.join();
  state_ = BusState::kDisconnected;
  absl::MutexLock queue_lock(&queue_mu_);
  queue_.clear();
  queued_bytes_ = 0;
  sent_ = 0;
}

Topic RedisBus::TopicFor(const std::string& entity,
                         const std::string& id) const {
  if (id == "*") {
    return Topic{
        true, absl::StrCat(EscapeGlob(absl::StrCat(options_.channel_prefix, ".",
                                                   entity, ".")),
                           "*")};
  }
  return Topic{false, KeySubject(options_.channel_prefix, entity, id)};
}

void RedisBus::Wake() {
  if (wake_fd_ < 0 || wake_pending_.exchange(true)) return;
  const uint64_t one = 1;
  if (write(wake_fd_, &one, sizeof(one)) < 0) {
    // Only EAGAIN (the counter is huge): the thread is woken anyway.
  }
}

absl::Status RedisBus::Publish(const v1::Notice& notice) {
  if (state_.load() != BusState::kConnected || stopping_.load()) {
    return absl::UnavailableError("not connected to Redis");
  }
  QueuedPublish item{KeySubject(options_.channel_prefix, notice.key().entity(),
                                notice.key().id()),
                     notice.SerializeAsString()};
  const size_t bytes = item.channel.size() + item.payload.size();
  if (item.payload.size() > options_.max_payload_bytes) {
    return absl::ResourceExhaustedError(absl::StrCat(
        "a notice of ", item.payload.size(),
        " bytes is above the Redis bus limit of ", options_.max_payload_bytes));
  }
  {
    absl::MutexLock lock(&queue_mu_);
    if (queue_.size() >= options_.max_queued_publishes ||
        queued_bytes_ + bytes > options_.max_queued_bytes) {
      return absl::UnavailableError(absl::StrCat(
          "Redis is not keeping up: ", queue_.size(), " notices wait for it"));
    }
    queued_bytes_ += bytes;
    queue_.push_back(std::move(item));
  }
  Wake();
  return absl::OkStatus();
}

void RedisBus::AddInterest(const std::string& entity, const std::string& id) {
  Topic topic = TopicFor(entity, id);
  {
    absl::MutexLock lock(&interest_mu_);
    if (++interest_[topic] > 1) return;
    changed_.insert(std::move(topic));
  }
  Wake();
}

void RedisBus::RemoveInterest(const std::string& entity,
                              const std::string& id) {
  Topic topic = TopicFor(entity, id);
  {
    absl::MutexLock lock(&interest_mu_);
    auto it = interest_.find(topic);
    if (it == interest_.end() || --it->second > 0) return;
    interest_.erase(it);
    changed_.insert(std::move(topic));
  }
  Wake();
}

void RedisBus::Run() {
  redis::BlockSigpipeOnThisThread();
  next_attempt_ = absl::Now();
  while (!stopping_.load()) {
    const absl::Time now = absl::Now();
    if (!session_ && now >= next_attempt_) OpenSession(now);
    if (session_) Step(now);

    pollfd fds[3] = {{wake_fd_, POLLIN, 0}, {-1, 0, 0}, {-1, 0, 0}};
    if (session_) {
      fds[1] = {publisher_.fd(), publisher_.poll_events(), 0};
      fds[2] = {subscriber_.fd(), subscriber_.poll_events(), 0};
    }
    const absl::Duration wait =
        std::max(absl::ZeroDuration(),
                 std::min(NextDeadline() - absl::Now(), absl::Seconds(1)));
    const int timeout_ms = static_cast<int>(
        absl::ToInt64Milliseconds(absl::Ceil(wait, absl::Milliseconds(1))));
    if (poll(fds, session_ ? 3 : 1, timeout_ms) < 0) continue;  // EINTR
    if (fds[0].revents != 0) {
      uint64_t count;
      if (read(wake_fd_, &count, sizeof(count)) < 0) {
        // EAGAIN: already drained.
      }
      // Cleared after the read and before the next Step looks at the queues,
      // so a Wake that found it set is always seen.
      wake_pending_ = false;
    }
    if (session_ && fds[1].revents != 0) {
      HandleEvents(/*publisher=*/true, fds[1].revents, absl::Now());
    }
    if (session_ && fds[2].revents != 0) {
      HandleEvents(/*publisher=*/false, fds[2].revents, absl::Now());
    }
  }
  CloseSession();
}

void RedisBus::OpenSession(absl::Time now) {
  const Address& address = addresses_[address_index_];
  std::string error;
  if (!publisher_.Open(address, &error) || !subscriber_.Open(address, &error)) {
    publisher_.Close();
    Fail(error);
    return;
  }
  session_ = true;
  connect_deadline_ = now + options_.connect_timeout;
}

void RedisBus::CloseSession() {
  publisher_.Close();
  subscriber_.Close();
  session_ = false;
  connected_ = false;
  publisher_expects_.clear();
  publisher_ready_ = false;
  subscribed_.clear();
  subscriber_auth_pending_ = false;
  subscriber_synced_ = false;
  subscriber_ready_ = false;
  ping_outstanding_ = false;
  // Unanswered publishes go out again on the next connection.
  absl::MutexLock lock(&queue_mu_);
  sent_ = 0;
}

void RedisBus::Fail(const std::string& reason) {
  CloseSession();
  SetState(BusState::kDisconnected);
  ReportError(reason);
  const int64_t jitter_us =
      absl::ToInt64Microseconds(options_.reconnect_jitter);
  next_attempt_ =
      absl::Now() + options_.reconnect_wait +
      absl::Microseconds(jitter_us > 0
                             ? absl::Uniform<int64_t>(bitgen_, 0, jitter_us + 1)
                             : 0);
  address_index_ = (address_index_ + 1) % addresses_.size();
}

void RedisBus::Step(absl::Time now) {
  if (!connected_ && now > connect_deadline_) {
    Fail(absl::StrCat("Redis at ", CurrentAddress(), " not ready within ",
                      absl::FormatDuration(options_.connect_timeout)));
    return;
  }
  if (!publisher_expects_.empty() &&
      now - publisher_progress_ > options_.command_timeout) {
    Fail(absl::StrCat("Redis at ", CurrentAddress(), " did not answer within ",
                      absl::FormatDuration(options_.command_timeout)));
    return;
  }
  if (ping_outstanding_ && now - std::max(ping_sent_, subscriber_last_read_) >
                               options_.command_timeout) {
    Fail(absl::StrCat("Redis at ", CurrentAddress(),
                      " did not answer a PING within ",
                      absl::FormatDuration(options_.command_timeout)));
    return;
  }
  // Subscriptions first: a key's interest declared just before a publish to
  // it then usually reaches Redis first (there is no ordering across the two
  // connections).
  if (subscriber_synced_) SendInterestChanges();
  if (subscriber_ready_ && !ping_outstanding_ &&
      now - last_pong_ >= options_.ping_interval) {
    subscriber_.Append({"PING"});
    ping_outstanding_ = true;
    ping_sent_ = now;
  }
  if (publisher_ready_) {
    SendPublishes(now);
    if (publisher_expects_.empty() &&
        now - publisher_progress_ >= options_.ping_interval) {
      publisher_.Append({"PING"});
      publisher_expects_.push_back(Expect::kPing);
      publisher_progress_ = now;
    }
  }
  std::string error;
  for (Connection* connection : {&subscriber_, &publisher_}) {
    if (!connection->connecting() && connection->wants_write() &&
        !connection->Flush(&error)) {
      Fail(error);
      return;
    }
  }
}

absl::Time RedisBus::NextDeadline() const {
  if (!session_) return next_attempt_;
  absl::Time next = absl::InfiniteFuture();
  if (!connected_) next = std::min(next, connect_deadline_);
  if (!publisher_expects_.empty()) {
    next = std::min(next, publisher_progress_ + options_.command_timeout);
  } else if (publisher_ready_) {
    next = std::min(next, publisher_progress_ + options_.ping_interval);
  }
  if (ping_outstanding_) {
    next = std::min(next, std::max(ping_sent_, subscriber_last_read_) +
                              options_.command_timeout);
  } else if (subscriber_ready_) {
    next = std::min(next, last_pong_ + options_.ping_interval);
  }
  return next;
}

void RedisBus::HandleEvents(bool publisher, short revents, absl::Time now) {
  Connection& connection = publisher ? publisher_ : subscriber_;
  std::string error;
  if (connection.connecting()) {
    if (!connection.FinishConnect(&error)) {
      Fail(error);
      return;
    }
    OnTcpConnected(publisher, now);
    return;
  }
  if ((revents & (POLLIN | POLLERR | POLLHUP)) != 0) {
    if (!connection.Read(&error)) {
      Fail(error);
      return;
    }
    if (!publisher) subscriber_last_read_ = now;
    while (true) {
      Reply reply;
      if (!connection.NextReply(&reply, &error)) break;
      if (reply == nullptr) break;
      const bool ok = publisher ? HandlePublisherReply(*reply, now, &error)
                                : HandleSubscriberReply(*reply, now, &error);
      if (!ok) break;
    }
    if (!error.empty()) {
      Fail(error);
      return;
    }
  }
  if ((revents & POLLOUT) != 0 && connection.wants_write() &&
      !connection.Flush(&error)) {
    Fail(error);
  }
}

void RedisBus::OnTcpConnected(bool publisher, absl::Time now) {
  Connection& connection = publisher ? publisher_ : subscriber_;
  if (!options_.password.empty()) {
    connection.Append({"AUTH", options_.password});
    if (publisher) publisher_expects_.push_back(Expect::kAuth);
    if (!publisher) subscriber_auth_pending_ = true;
  }
  if (publisher) {
    connection.Append({"PING"});
    publisher_expects_.push_back(Expect::kHello);
    publisher_progress_ = now;
    return;
  }
  std::vector<Topic> topics;
  {
    absl::MutexLock lock(&interest_mu_);
    changed_.clear();
    topics.reserve(interest_.size());
    for (const auto& [topic, refs] : interest_) topics.push_back(topic);
  }
  for (Topic& topic : topics) {
    connection.Append({topic.pattern ? "PSUBSCRIBE" : "SUBSCRIBE", topic.name});
    subscribed_.insert(std::move(topic));
  }
  subscriber_synced_ = true;
  // Redis answers in order: the PONG confirms every subscription above.
  connection.Append({"PING"});
  ping_outstanding_ = true;
  ping_sent_ = now;
}

bool RedisBus::HandlePublisherReply(const redisReply& reply, absl::Time now,
                                    std::string* error) {
  if (publisher_expects_.empty()) {
    *error = "Redis sent a reply to no command";
    return false;
  }
  const Expect expect = publisher_expects_.front();
  publisher_expects_.pop_front();
  publisher_progress_ = now;
  if (expect == Expect::kPublish) {
    {
      absl::MutexLock lock(&queue_mu_);
      queued_bytes_ -=
          queue_.front().channel.size() + queue_.front().payload.size();
      queue_.pop_front();
      --sent_;
    }
    // Not retried: the same command would fail again.
    if (reply.type == REDIS_REPLY_ERROR) {
      ReportError(absl::StrCat("Redis refused a PUBLISH: ", Str(reply)));
    }
    return true;
  }
  if (reply.type == REDIS_REPLY_ERROR) {
    *error = absl::StrCat("Redis at ", CurrentAddress(), " refused ",
                          expect == Expect::kAuth ? "AUTH" : "PING", ": ",
                          Str(reply));
    return false;
  }
  if (expect == Expect::kHello) {
    publisher_ready_ = true;
    MaybeConnected();
  }
  return true;
}

bool RedisBus::HandleSubscriberReply(const redisReply& reply, absl::Time now,
                                     std::string* error) {
  const bool auth_reply = std::exchange(subscriber_auth_pending_, false);
  if (reply.type == REDIS_REPLY_ERROR) {
    *error =
        absl::StrCat("Redis at ", CurrentAddress(), " refused ",
                     auth_reply ? "AUTH" : "a subscription", ": ", Str(reply));
    return false;
  }
  bool pong = false;
  if (reply.type == REDIS_REPLY_STATUS) {
    pong = !auth_reply && absl::EqualsIgnoreCase(Str(reply), "PONG");
  } else if (reply.type == REDIS_REPLY_ARRAY && reply.elements > 0 &&
             IsString(*reply.element[0])) {
    const absl::string_view kind = Str(*reply.element[0]);
    if (absl::EqualsIgnoreCase(kind, "message") && reply.elements == 3) {
      Deliver(Topic{false, std::string(Str(*reply.element[1]))},
              Str(*reply.element[1]), Str(*reply.element[2]));
    } else if (absl::EqualsIgnoreCase(kind, "pmessage") &&
               reply.elements == 4) {
      Deliver(Topic{true, std::string(Str(*reply.element[1]))},
              Str(*reply.element[2]), Str(*reply.element[3]));
    } else {
      // Else a (un)subscribe confirmation: the PONG covers them.
      pong = absl::EqualsIgnoreCase(kind, "pong");
    }
  }
  if (pong) {
    ping_outstanding_ = false;
    last_pong_ = now;
    if (!subscriber_ready_) {
      subscriber_ready_ = true;
      MaybeConnected();
    }
  }
  return true;
}

void RedisBus::Deliver(Topic topic, absl::string_view channel,
                       absl::string_view payload) {
  {
    // No notice for a key after RemoveInterest returned, although Redis may
    // still send a few until it reads the UNSUBSCRIBE.
    absl::MutexLock lock(&interest_mu_);
    if (!interest_.contains(topic)) return;
  }
  v1::Notice notice;
  // A payload that is not a Notice, or whose key does not belong on this
  // channel (another prefix whose channels match our pattern, another
  // publisher), names no key we could repair: dropped.
  if (!notice.ParseFromArray(payload.data(),
                             static_cast<int>(payload.size())) ||
      !notice.has_key() ||
      KeySubject(options_.channel_prefix, notice.key().entity(),
                 notice.key().id()) != channel) {
    return;
  }
  if (handlers_.on_notice) handlers_.on_notice(notice);
}

void RedisBus::SendPublishes(absl::Time now) {
  absl::MutexLock lock(&queue_mu_);
  if (sent_ < queue_.size() && publisher_expects_.empty()) {
    publisher_progress_ = now;
  }
  for (; sent_ < queue_.size(); ++sent_) {
    publisher_.Append(
        {"PUBLISH", queue_[sent_].channel, queue_[sent_].payload});
    publisher_expects_.push_back(Expect::kPublish);
  }
}

void RedisBus::SendInterestChanges() {
  std::vector<std::pair<Topic, bool>> changes;
  {
    absl::MutexLock lock(&interest_mu_);
    if (changed_.empty()) return;
    changes.reserve(changed_.size());
    for (const Topic& topic : changed_) {
      changes.emplace_back(topic, interest_.contains(topic));
    }
    changed_.clear();
  }
  for (auto& [topic, wanted] : changes) {
    const bool subscribed = subscribed_.contains(topic);
    if (wanted && !subscribed) {
      subscriber_.Append(
          {topic.pattern ? "PSUBSCRIBE" : "SUBSCRIBE", topic.name});
      subscribed_.insert(topic);
    } else if (!wanted && subscribed) {
      subscriber_.Append(
          {topic.pattern ? "PUNSUBSCRIBE" : "UNSUBSCRIBE", topic.name});
      subscribed_.erase(topic);
    }
  }
}

void RedisBus::MaybeConnected() {
  if (connected_ || !publisher_ready_ || !subscriber_ready_) return;
  connected_ = true;
  reported_errors_.clear();
  SetState(BusState::kConnected);
  // Notices published while we were away are lost: resolve everything again.
  if (handlers_.on_resync) handlers_.on_resync();
}

void RedisBus::SetState(BusState state) {
  if (state_.exchange(state) == state) return;
  if (handlers_.on_state) handlers_.on_state(state);
}

void RedisBus::ReportError(const std::string& reason) {
  constexpr size_t kMaxReasonsPerOutage = 16;
  if (!options_.on_error || reported_errors_.size() >= kMaxReasonsPerOutage ||
      !reported_errors_.insert(reason).second) {
    return;
  }
  // Redis' own error texts never quote the password; make sure of it.
  options_.on_error(
      options_.password.empty()
          ? reason
          : absl::StrReplaceAll(reason, {{options_.password, "<password>"}}));
}

std::unique_ptr<Bus> NewRedisBus(RedisBusOptions options) {
  return std::make_unique<RedisBus>(std::move(options));
}

}  // namespace entitysync
