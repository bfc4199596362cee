#include "client/subscriber.h"

#include <algorithm>

#include "absl/random/distributions.h"
#include "absl/strings/str_cat.h"
#include "common/grpc_status.h"
#include "grpcpp/create_channel.h"
#include "grpcpp/support/channel_arguments.h"

namespace entitysync {
namespace client {
namespace {

std::shared_ptr<grpc::Channel> CreateChannel(const std::string& target,
                                             const SubscriberOptions& options) {
  grpc::ChannelArguments args;
  // A fresh connection per attempt: channels otherwise share subchannels
  // process-wide, and a reconnect after a goaway must not reuse the
  // connection to the draining server.
  args.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);
  args.SetMaxReceiveMessageSize(options.max_message_bytes);
  args.SetInt(
      GRPC_ARG_KEEPALIVE_TIME_MS,
      static_cast<int>(absl::ToInt64Milliseconds(options.keepalive_time)));
  args.SetInt(
      GRPC_ARG_KEEPALIVE_TIMEOUT_MS,
      static_cast<int>(absl::ToInt64Milliseconds(options.keepalive_timeout)));
  // A subscriber mostly receives; gRPC would stop pinging after two pings
  // with nothing sent (GRPC_ARG_HTTP2_MAX_PINGS_WITHOUT_DATA), leaving a
  // quiet stream's dead connection unnoticed.
  args.SetInt(GRPC_ARG_HTTP2_MAX_PINGS_WITHOUT_DATA, 0);
  return grpc::CreateCustomChannel(target,
                                   options.channel_credentials != nullptr
                                       ? options.channel_credentials
                                       : grpc::InsecureChannelCredentials(),
                                   args);
}

}  // namespace

absl::StatusOr<std::unique_ptr<Subscriber>> Subscriber::Create(
    SubscriberOptions options) {
  if (options.targets.empty()) {
    return absl::InvalidArgumentError("no targets");
  }
  for (const std::string& target : options.targets) {
    if (target.empty()) return absl::InvalidArgumentError("empty target");
  }
  if (options.keepalive_time <= absl::ZeroDuration() ||
      options.keepalive_timeout <= absl::ZeroDuration()) {
    return absl::InvalidArgumentError(
        "keepalive_time and keepalive_timeout must be positive");
  }
  if (options.backoff_initial <= absl::ZeroDuration() ||
      options.backoff_max < options.backoff_initial) {
    return absl::InvalidArgumentError(
        "backoff_initial must be positive and at most backoff_max");
  }
  if (options.connect_timeout <= absl::ZeroDuration()) {
    return absl::InvalidArgumentError("connect_timeout must be positive");
  }
  return std::unique_ptr<Subscriber>(new Subscriber(std::move(options)));
}

Subscriber::Subscriber(SubscriberOptions options)
    : options_(std::move(options)),
      reconnect_backoff_(options_.backoff_initial, options_.backoff_max) {
  thread_ = std::thread(&Subscriber::Run, this);
}

Subscriber::~Subscriber() {
  {
    absl::MutexLock lock(&mu_);
    stop_ = true;
  }
  thread_.join();
}

absl::Status Subscriber::Subscribe(const EntityKey& key,
                                   UpdateCallback on_update) {
  if (key.entity.empty() || key.id.empty()) {
    return absl::InvalidArgumentError("entity and id must not be empty");
  }
  if (!on_update) return absl::InvalidArgumentError("null callback");
  absl::MutexLock lock(&mu_);
  if (subscriptions_.contains(key)) {
    return absl::AlreadyExistsError(
        absl::StrCat(EntityKeyToString(key), " is already subscribed"));
  }
  subscriptions_.try_emplace(key, next_subscription_id_++, std::move(on_update),
                             options_);
  to_send_.push_back(key);
  return absl::OkStatus();
}

absl::Status Subscriber::Unsubscribe(const EntityKey& key) {
  absl::MutexLock lock(&mu_);
  auto it = subscriptions_.find(key);
  if (it == subscriptions_.end()) {
    return absl::NotFoundError(
        absl::StrCat(EntityKeyToString(key), " is not subscribed"));
  }
  const uint64_t id = it->second.id;
  const SubscriptionState state = it->second.state;
  if (stream_ != nullptr && (state == SubscriptionState::kSent ||
                             state == SubscriptionState::kLive)) {
    const uint64_t request_id = next_request_id_++;
    v1::SubscribeRequest request;
    request.set_request_id(request_id);
    *request.mutable_unsubscribe()->mutable_key() = ToProto(key);
    outbox_.push_back(std::move(request));
    pending_[request_id] = PendingRequest{key, id, /*is_subscribe=*/false};
  }
  EraseSubscriptionLocked(key);
  // Erasing stops future deliveries; waiting here also covers one that has
  // already started, so the caller may free what the callback uses. On the
  // subscriber's thread the running callback is the caller itself.
  if (std::this_thread::get_id() != thread_.get_id()) {
    auto not_running = [this, id]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
      return running_subscription_ != id;
    };
    mu_.Await(absl::Condition(&not_running));
  }
  return absl::OkStatus();
}

bool Subscriber::IsConnected() const {
  absl::MutexLock lock(&mu_);
  return connected_;
}

bool Subscriber::WaitForConnected(absl::Duration timeout) const {
  absl::MutexLock lock(&mu_);
  return mu_.AwaitWithTimeout(absl::Condition(&connected_), timeout);
}

void Subscriber::EraseSubscriptionLocked(const EntityKey& key) {
  auto it = subscriptions_.find(key);
  if (it == subscriptions_.end()) return;
  if (it->second.state == SubscriptionState::kRetryWait) --retry_waiting_;
  subscriptions_.erase(it);
}

void Subscriber::Run() {
  for (;;) {
    Work work;
    {
      absl::MutexLock lock(&mu_);
      mu_.AwaitWithDeadline(absl::Condition(this, &Subscriber::HasWorkLocked),
                            NextTimerLocked());
      if (stop_) break;
      work = TakeWorkLocked(absl::Now());
    }
    DoWork(std::move(work));
  }
  Shutdown();
}

void Subscriber::Shutdown() {
  std::shared_ptr<SubscribeStream> stream;
  {
    absl::MutexLock lock(&mu_);
    stream = stream_;
  }
  if (stream != nullptr) stream->Cancel();
  std::shared_ptr<grpc::Channel> channel;
  std::deque<std::pair<uint64_t, StreamEvent>> unhandled;
  {
    absl::MutexLock lock(&mu_);
    auto all_done = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
      return live_streams_ == 0;
    };
    mu_.Await(absl::Condition(&all_done));
    connected_ = false;
    stream_.reset();
    channel = std::move(channel_);
    unhandled.swap(inbox_);
  }
  // Released here, on the subscriber's thread and without mu_ (see
  // subscribe_stream.h): the kDone event holds the call's context.
  unhandled.clear();
  channel.reset();
}

bool Subscriber::HasWorkLocked() const {
  return stop_ || !inbox_.empty() ||
         (stream_ != nullptr && (!to_send_.empty() || !outbox_.empty()));
}

absl::Time Subscriber::NextTimerLocked() const {
  absl::Time next = absl::InfiniteFuture();
  if (stream_ == nullptr) {
    next = reconnect_at_;
  } else {
    next = connect_check_at_;
    if (!goaway_cancel_sent_) next = std::min(next, goaway_at_);
  }
  if (retry_waiting_ > 0) {
    for (const auto& [key, sub] : subscriptions_) {
      if (sub.state == SubscriptionState::kRetryWait) {
        next = std::min(next, sub.retry_at);
      }
    }
  }
  return next;
}

Subscriber::Work Subscriber::TakeWorkLocked(absl::Time now) {
  Work work;
  if (retry_waiting_ > 0) {
    for (auto& [key, sub] : subscriptions_) {
      if (sub.state == SubscriptionState::kRetryWait && sub.retry_at <= now) {
        --retry_waiting_;
        MarkUnsentLocked(key, sub);
      }
    }
  }
  if (stream_ == nullptr) {
    // A stream's kDone is always handled before the next stream starts, so
    // there is never more than one.
    if (inbox_.empty() && now >= reconnect_at_) {
      work.start_stream = true;
      return work;
    }
  } else {
    work.stream = stream_;
    work.channel = channel_;
    if (!goaway_cancel_sent_ && now >= goaway_at_) {
      goaway_cancel_sent_ = true;
      cancel_reason_ = absl::UnavailableError("server sent goaway");
      work.cancel_stream = true;
    }
    if (now >= connect_check_at_) {
      connect_check_at_ = absl::InfiniteFuture();
      work.check_connect = true;
    }
    if (!to_send_.empty()) QueueSubscribesLocked();
    work.writes.swap(outbox_);
  }
  if (!inbox_.empty()) {
    work.has_event = true;
    work.event_generation = inbox_.front().first;
    work.event = std::move(inbox_.front().second);
    inbox_.pop_front();
  }
  return work;
}

void Subscriber::MarkUnsentLocked(const EntityKey& key, Subscription& sub) {
  sub.state = SubscriptionState::kUnsent;
  to_send_.push_back(key);
}

void Subscriber::QueueSubscribesLocked() {
  std::vector<EntityKey> keys;
  keys.swap(to_send_);
  for (const EntityKey& key : keys) {
    auto it = subscriptions_.find(key);
    if (it == subscriptions_.end() ||
        it->second.state != SubscriptionState::kUnsent) {
      continue;
    }
    Subscription& sub = it->second;
    const uint64_t request_id = next_request_id_++;
    v1::SubscribeRequest request;
    request.set_request_id(request_id);
    v1::Subscribe* subscribe = request.mutable_subscribe();
    *subscribe->mutable_key() = ToProto(key);
    if (!key.is_wildcard()) {
      auto delivered = sub.delivered.find(key.id);
      if (delivered != sub.delivered.end()) {
        subscribe->set_known_version(delivered->second);
      }
    }
    outbox_.push_back(std::move(request));
    pending_[request_id] = PendingRequest{key, sub.id, /*is_subscribe=*/true};
    sub.state = SubscriptionState::kSent;
  }
}

void Subscriber::OnStreamEvent(uint64_t generation, StreamEvent event) {
  absl::MutexLock lock(&mu_);
  if (event.kind == StreamEvent::Kind::kDone) --live_streams_;
  inbox_.emplace_back(generation, std::move(event));
}

void Subscriber::DoWork(Work work) {
  if (work.start_stream) {
    StartStream();
    return;
  }
  for (v1::SubscribeRequest& request : work.writes) {
    work.stream->Write(std::move(request));
  }
  if (work.cancel_stream) work.stream->Cancel();
  if (work.check_connect) CheckConnect(work.stream, work.channel);
  if (work.has_event) {
    HandleStreamEvent(work.event_generation, std::move(work.event));
  }
}

void Subscriber::StartStream() {
  std::string target;
  uint64_t generation;
  {
    absl::MutexLock lock(&mu_);
    target = options_.targets[target_index_];
    generation = ++stream_generation_;
    ++live_streams_;
  }
  std::shared_ptr<grpc::Channel> channel = CreateChannel(target, options_);
  std::shared_ptr<SubscribeStream> stream = SubscribeStream::Start(
      channel, options_.credentials, [this, generation](StreamEvent event) {
        OnStreamEvent(generation, std::move(event));
      });
  absl::MutexLock lock(&mu_);
  stream_ = std::move(stream);
  channel_ = std::move(channel);
  connected_ = false;
  connect_check_at_ = absl::Now() + options_.connect_timeout;
  goaway_at_ = absl::InfiniteFuture();
  goaway_cancel_sent_ = false;
  cancel_reason_ = absl::OkStatus();
  pending_.clear();
  outbox_.clear();
  to_send_.clear();
  for (auto& [key, sub] : subscriptions_) {
    if (sub.state != SubscriptionState::kRetryWait) MarkUnsentLocked(key, sub);
  }
}

void Subscriber::CheckConnect(const std::shared_ptr<SubscribeStream>& stream,
                              const std::shared_ptr<grpc::Channel>& channel) {
  // A server need not send initial metadata before its first message, so a
  // READY channel counts as up even without it.
  if (channel->GetState(/*try_to_connect=*/false) == GRPC_CHANNEL_READY) {
    HandleConnected();
    return;
  }
  {
    absl::MutexLock lock(&mu_);
    cancel_reason_ = absl::DeadlineExceededError(
        absl::StrCat("not connected within ",
                     absl::FormatDuration(options_.connect_timeout)));
  }
  stream->Cancel();
}

void Subscriber::HandleStreamEvent(uint64_t generation, StreamEvent event) {
  {
    absl::MutexLock lock(&mu_);
    if (generation != stream_generation_) return;
  }
  switch (event.kind) {
    case StreamEvent::Kind::kUp:
      HandleConnected();
      break;
    case StreamEvent::Kind::kMessage:
      HandleConnected();
      HandleMessage(event.message);
      break;
    case StreamEvent::Kind::kDone:
      HandleDisconnected(event.status);
      // The call's context goes with the event, here on the subscriber's
      // thread (see subscribe_stream.h).
      break;
  }
}

void Subscriber::HandleConnected() {
  SubscriberEvent event{SubscriberEvent::Type::kConnected};
  {
    absl::MutexLock lock(&mu_);
    if (connected_ || stream_ == nullptr) return;
    connected_ = true;
    connect_check_at_ = absl::InfiniteFuture();
    event.target = options_.targets[target_index_];
  }
  reconnect_backoff_.Reset();
  Emit(event);
}

void Subscriber::HandleDisconnected(const grpc::Status& status) {
  SubscriberEvent event{SubscriberEvent::Type::kDisconnected};
  event.status = FromGrpcStatus(status);
  // Destroyed after the lock is released: the last channel's destruction
  // joins gRPC threads that may be waiting for mu_.
  std::shared_ptr<grpc::Channel> channel;
  {
    absl::MutexLock lock(&mu_);
    const absl::Time now = absl::Now();
    event.target = options_.targets[target_index_];
    if (!cancel_reason_.ok()) event.status = cancel_reason_;
    cancel_reason_ = absl::OkStatus();
    reconnect_at_ = goaway_at_ != absl::InfiniteFuture()
                        ? std::max(now, goaway_at_)
                        : now + reconnect_backoff_.NextDelay(gen_);
    event.delay = reconnect_at_ - now;
    target_index_ = (target_index_ + 1) % options_.targets.size();
    stream_.reset();
    channel = std::move(channel_);
    connected_ = false;
    connect_check_at_ = absl::InfiniteFuture();
    goaway_at_ = absl::InfiniteFuture();
    pending_.clear();
    outbox_.clear();
    // The next stream resends them (StartStream).
    to_send_.clear();
  }
  channel.reset();
  Emit(event);
}

void Subscriber::HandleMessage(const v1::SubscribeResponse& message) {
  switch (message.kind_case()) {
    case v1::SubscribeResponse::kSubscribed:
      HandleSubscribed(message.subscribed());
      break;
    case v1::SubscribeResponse::kUpdate:
      HandleUpdate(message.update());
      break;
    case v1::SubscribeResponse::kStale:
      HandleStale(message.stale());
      break;
    case v1::SubscribeResponse::kError:
      HandleError(message.error());
      break;
    case v1::SubscribeResponse::kUnsubscribed: {
      absl::MutexLock lock(&mu_);
      pending_.erase(message.unsubscribed().request_id());
      break;
    }
    case v1::SubscribeResponse::kGoaway:
      HandleGoAway(message.goaway());
      break;
    case v1::SubscribeResponse::kBatch:
      // Asked for by SubscribeStream: each as if it had come alone.
      for (const v1::SubscribeResponse& m : message.batch().responses()) {
        HandleMessage(m);
      }
      break;
    case v1::SubscribeResponse::kAuthenticated:
    case v1::SubscribeResponse::kPassthroughReply:
    case v1::SubscribeResponse::KIND_NOT_SET:
      // This client sends no pass-through requests; unknown kinds come from
      // newer servers and are safe to ignore.
      break;
  }
}

Subscriber::Subscription* Subscriber::FindAnsweredLocked(
    uint64_t request_id, const v1::EntityKey& key, EntityKey* answered_key,
    bool* by_request) {
  auto pending = pending_.find(request_id);
  *by_request = pending != pending_.end();
  if (*by_request) {
    const PendingRequest request = pending->second;
    pending_.erase(pending);
    *answered_key = request.key;
    auto it = subscriptions_.find(request.key);
    if (!request.is_subscribe || it == subscriptions_.end() ||
        it->second.id != request.subscription_id) {
      return nullptr;
    }
    return &it->second;
  }
  *answered_key = FromProto(key);
  auto it = subscriptions_.find(*answered_key);
  return it == subscriptions_.end() ? nullptr : &it->second;
}

void Subscriber::HandleSubscribed(const v1::Subscribed& subscribed) {
  SubscriberEvent event{SubscriberEvent::Type::kSubscribed};
  {
    absl::MutexLock lock(&mu_);
    bool by_request;
    Subscription* sub = FindAnsweredLocked(
        subscribed.request_id(), subscribed.key(), &event.key, &by_request);
    if (sub == nullptr || sub->state != SubscriptionState::kSent) return;
    sub->state = SubscriptionState::kLive;
    sub->retry_backoff.Reset();
  }
  Emit(event);
}

void Subscriber::HandleUpdate(const v1::Update& update) {
  const EntityKey key = FromProto(update.key());
  Deliver(key, key.id, update);
  if (!key.is_wildcard()) {
    Deliver(EntityKey{key.entity, "*"}, key.id, update);
  }
}

void Subscriber::Deliver(const EntityKey& subscription_key,
                         const std::string& id, const v1::Update& update) {
  std::shared_ptr<const UpdateCallback> on_update;
  {
    absl::MutexLock lock(&mu_);
    auto it = subscriptions_.find(subscription_key);
    if (it == subscriptions_.end()) return;
    Subscription& sub = it->second;
    auto [delivered, first] = sub.delivered.try_emplace(id, update.version());
    const bool refresh = !first && update.version() == delivered->second &&
                         sub.stale.contains(id);
    if (!first) {
      if (update.version() <= delivered->second && !refresh) return;
      delivered->second = update.version();
    }
    sub.stale.erase(id);
    on_update = sub.on_update;
    running_subscription_ = sub.id;
  }
  (*on_update)(update);
  absl::MutexLock lock(&mu_);
  running_subscription_ = 0;
}

void Subscriber::HandleStale(const v1::Stale& stale) {
  SubscriberEvent event{SubscriberEvent::Type::kStale};
  event.key = FromProto(stale.key());
  event.reason = stale.reason();
  {
    absl::MutexLock lock(&mu_);
    bool held = false;
    for (const EntityKey& key : {event.key, EntityKey{event.key.entity, "*"}}) {
      auto it = subscriptions_.find(key);
      if (it == subscriptions_.end()) continue;
      it->second.stale.insert(event.key.id);
      held = true;
    }
    if (!held) return;
  }
  Emit(event);
}

void Subscriber::HandleError(const v1::Error& error) {
  SubscriberEvent event{SubscriberEvent::Type::kError};
  event.status = StatusFromRpcCode(error.code(), error.message());
  if (event.status.ok()) event.status = absl::UnknownError("error code 0");
  const absl::StatusCode code = event.status.code();
  {
    absl::MutexLock lock(&mu_);
    bool by_request;
    Subscription* sub = FindAnsweredLocked(error.request_id(), error.key(),
                                           &event.key, &by_request);
    // A later request of ours for the key replaced this one; its answer is
    // the one that counts.
    if (error.superseded()) return;
    if (sub == nullptr) {
      // Not about a subscription we hold (e.g. an unsubscribe of a key the
      // server had already dropped): report only.
    } else if (code == absl::StatusCode::kAlreadyExists && by_request) {
      // The server still holds the subscription (e.g. it answered
      // UNAVAILABLE but kept it): it is live, not failed.
      sub->state = SubscriptionState::kLive;
      sub->retry_backoff.Reset();
      event.type = SubscriberEvent::Type::kSubscribed;
      event.status = absl::OkStatus();
    } else if (code == absl::StatusCode::kUnavailable) {
      // Resubscribing is only safe for an answer to our own request; an
      // unsolicited UNAVAILABLE leaves the subscription as it is (the server
      // signals transient resolve problems with `stale`).
      if (by_request && sub->state != SubscriptionState::kRetryWait) {
        ++retry_waiting_;
        sub->state = SubscriptionState::kRetryWait;
        event.delay = sub->retry_backoff.NextDelay(gen_);
        sub->retry_at = absl::Now() + event.delay;
        event.retrying = true;
      }
    } else {
      event.final = true;
      EraseSubscriptionLocked(event.key);
    }
  }
  Emit(event);
}

void Subscriber::HandleGoAway(const v1::GoAway& goaway) {
  SubscriberEvent event{SubscriberEvent::Type::kGoAway};
  event.delay = absl::Milliseconds(absl::Uniform<uint32_t>(
      absl::IntervalClosed, gen_, 0, goaway.reconnect_within_ms()));
  {
    absl::MutexLock lock(&mu_);
    event.target = options_.targets[target_index_];
    goaway_at_ = std::min(goaway_at_, absl::Now() + event.delay);
  }
  Emit(event);
}

void Subscriber::Emit(const SubscriberEvent& event) const {
  if (options_.on_event) options_.on_event(event);
}

}  // namespace client
}  // namespace entitysync
