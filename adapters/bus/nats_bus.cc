#include "adapters/bus/nats_bus.h"

#include <atomic>
#include <utility>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "adapters/bus/subject_token.h"
#include "nats/nats.h"

namespace entitysync {
namespace {

// The one place that maps natsStatus to absl::Status.
absl::Status FromNats(natsStatus s, absl::string_view what) {
  if (s == NATS_OK) return absl::OkStatus();
  const std::string message = absl::StrCat(what, ": ", natsStatus_GetText(s));
  switch (s) {
    case NATS_INVALID_ARG:
    case NATS_INVALID_SUBJECT:
      return absl::InvalidArgumentError(message);
    case NATS_NO_MEMORY:
    case NATS_INSUFFICIENT_BUFFER:
    case NATS_MAX_PAYLOAD:
    case NATS_SLOW_CONSUMER:
      return absl::ResourceExhaustedError(message);
    default:
      return absl::UnavailableError(message);
  }
}

int64_t Millis(absl::Duration d) { return absl::ToInt64Milliseconds(d); }

}  // namespace

class NatsBus : public Bus {
 public:
  explicit NatsBus(NatsBusOptions options);
  ~NatsBus() override;

  absl::Status Start(BusHandlers handlers) override;
  absl::Status Publish(const v1::Notice& notice) override;
  void AddInterest(const std::string& entity, const std::string& id) override;
  void RemoveInterest(const std::string& entity,
                      const std::string& id) override;
  BusState state() const override { return state_.load(); }
  void Stop() override;

 private:
  struct Interest {
    int refs = 0;
    // Null when the SUB could not be sent yet; retried on (re)connect.
    natsSubscription* subscription = nullptr;
  };

  static void OnMessage(natsConnection* nc, natsSubscription* sub, natsMsg* msg,
                        void* closure);
  static void OnConnected(natsConnection* nc, void* closure);
  static void OnDisconnected(natsConnection* nc, void* closure);
  static void OnClosed(natsConnection* nc, void* closure);
  static void OnError(natsConnection* nc, natsSubscription* sub, natsStatus err,
                      void* closure);

  void Connected();
  void SetState(BusState state);
  void Resync();
  void SubscribeLocked(const std::string& subject, Interest& interest)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(interest_mu_);
  void RetryMissingSubscriptions();

  const NatsBusOptions options_;
  std::atomic<BusState> state_{BusState::kDisconnected};
  // Set by Start, cleared and freed by Stop.
  std::atomic<natsConnection*> connection_{nullptr};

  // Held shared while a handler runs; Stop takes it exclusively.
  absl::Mutex handlers_mu_;
  BusHandlers handlers_ ABSL_GUARDED_BY(handlers_mu_);
  bool running_ ABSL_GUARDED_BY(handlers_mu_) = false;

  absl::Mutex interest_mu_;
  absl::flat_hash_map<std::string, Interest> interest_
      ABSL_GUARDED_BY(interest_mu_);

  absl::Mutex closed_mu_;
  bool closed_ ABSL_GUARDED_BY(closed_mu_) = false;
};

NatsBus::NatsBus(NatsBusOptions options) : options_(std::move(options)) {}

NatsBus::~NatsBus() { Stop(); }

absl::Status NatsBus::Start(BusHandlers handlers) {
  {
    absl::WriterMutexLock lock(&handlers_mu_);
    if (running_ || connection_ != nullptr) {
      return absl::FailedPreconditionError("bus already started");
    }
    handlers_ = std::move(handlers);
    running_ = true;
  }
  natsOptions* opts = nullptr;
  natsStatus s = natsOptions_Create(&opts);
  std::vector<const char*> urls;
  for (const std::string& url : options_.urls) urls.push_back(url.c_str());
  if (s == NATS_OK) {
    s = natsOptions_SetServers(opts, urls.data(),
                               static_cast<int>(urls.size()));
  }
  if (s == NATS_OK)
    s = natsOptions_SetName(opts, options_.connection_name.c_str());
  if (s == NATS_OK) s = natsOptions_SetMaxReconnect(opts, -1);  // forever
  if (s == NATS_OK) {
    s = natsOptions_SetReconnectWait(opts, Millis(options_.reconnect_wait));
  }
  if (s == NATS_OK) {
    s = natsOptions_SetReconnectJitter(opts, Millis(options_.reconnect_jitter),
                                       Millis(options_.reconnect_jitter));
  }
  if (s == NATS_OK)
    s = natsOptions_SetTimeout(opts, Millis(options_.connect_timeout));
  if (s == NATS_OK) {
    s = natsOptions_SetPingInterval(opts, Millis(options_.ping_interval));
  }
  if (s == NATS_OK)
    s = natsOptions_SetMaxPingsOut(opts, options_.max_pings_out);
  if (s == NATS_OK) s = natsOptions_SetSendAsap(opts, options_.send_asap);
  if (s == NATS_OK) s = natsOptions_UseGlobalMessageDelivery(opts, true);
  if (s == NATS_OK)
    s = natsOptions_SetDisconnectedCB(opts, &OnDisconnected, this);
  if (s == NATS_OK) s = natsOptions_SetReconnectedCB(opts, &OnConnected, this);
  if (s == NATS_OK) s = natsOptions_SetClosedCB(opts, &OnClosed, this);
  if (s == NATS_OK) s = natsOptions_SetErrorHandler(opts, &OnError, this);
  if (s == NATS_OK) {
    s = natsOptions_SetRetryOnFailedConnect(opts, true, &OnConnected, this);
  }
  if (s != NATS_OK) {
    natsOptions_Destroy(opts);
    return FromNats(s, "configuring the NATS connection");
  }
  natsConnection* connection = nullptr;
  s = natsConnection_Connect(&connection, opts);
  natsOptions_Destroy(opts);
  if (s != NATS_OK && s != NATS_NOT_YET_CONNECTED) {
    return FromNats(s, "connecting to NATS");
  }
  {
    absl::MutexLock lock(&interest_mu_);
    connection_ = connection;
  }
  // Interest declared before the connection existed.
  RetryMissingSubscriptions();
  if (s == NATS_OK) {
    Connected();
  } else {
    SetState(BusState::kDisconnected);
  }
  return absl::OkStatus();
}

absl::Status NatsBus::Publish(const v1::Notice& notice) {
  natsConnection* connection = connection_.load();
  if (state_.load() != BusState::kConnected || connection == nullptr) {
    return absl::UnavailableError("not connected to NATS");
  }
  const std::string subject = KeySubject(
      options_.subject_prefix, notice.key().entity(), notice.key().id());
  const std::string payload = notice.SerializeAsString();
  return FromNats(
      natsConnection_Publish(connection_, subject.c_str(), payload.data(),
                             static_cast<int>(payload.size())),
      "publishing to NATS");
}

void NatsBus::SubscribeLocked(const std::string& subject, Interest& interest) {
  natsConnection* connection = connection_.load();
  if (connection == nullptr || interest.subscription != nullptr) return;
  natsSubscription* sub = nullptr;
  if (natsConnection_Subscribe(&sub, connection, subject.c_str(), &OnMessage,
                               this) != NATS_OK) {
    return;  // Retried on the next (re)connect.
  }
  natsSubscription_SetPendingLimits(sub, options_.pending_messages_limit,
                                    options_.pending_bytes_limit);
  interest.subscription = sub;
}

void NatsBus::AddInterest(const std::string& entity, const std::string& id) {
  const std::string subject = KeySubject(options_.subject_prefix, entity, id);
  absl::MutexLock lock(&interest_mu_);
  Interest& interest = interest_[subject];
  if (++interest.refs == 1) SubscribeLocked(subject, interest);
}

void NatsBus::RemoveInterest(const std::string& entity, const std::string& id) {
  const std::string subject = KeySubject(options_.subject_prefix, entity, id);
  absl::MutexLock lock(&interest_mu_);
  auto it = interest_.find(subject);
  if (it == interest_.end() || --it->second.refs > 0) return;
  if (it->second.subscription != nullptr) {
    natsSubscription_Unsubscribe(it->second.subscription);
    natsSubscription_Destroy(it->second.subscription);
  }
  interest_.erase(it);
}

void NatsBus::RetryMissingSubscriptions() {
  absl::MutexLock lock(&interest_mu_);
  for (auto& [subject, interest] : interest_)
    SubscribeLocked(subject, interest);
}

void NatsBus::OnMessage(natsConnection*, natsSubscription*, natsMsg* msg,
                        void* closure) {
  auto* self = static_cast<NatsBus*>(closure);
  v1::Notice notice;
  const bool parsed =
      notice.ParseFromArray(natsMsg_GetData(msg), natsMsg_GetDataLength(msg));
  natsMsg_Destroy(msg);
  // A payload that is not a Notice (another publisher on our prefix) is
  // dropped: it names no key we could repair.
  if (!parsed || !notice.has_key()) return;
  absl::ReaderMutexLock lock(&self->handlers_mu_);
  if (self->running_ && self->handlers_.on_notice)
    self->handlers_.on_notice(notice);
}

void NatsBus::OnConnected(natsConnection*, void* closure) {
  static_cast<NatsBus*>(closure)->Connected();
}

void NatsBus::Connected() {
  RetryMissingSubscriptions();
  SetState(BusState::kConnected);
  // Notices published while we were away are lost: resolve everything again.
  Resync();
}

void NatsBus::OnDisconnected(natsConnection*, void* closure) {
  static_cast<NatsBus*>(closure)->SetState(BusState::kDisconnected);
}

void NatsBus::OnClosed(natsConnection*, void* closure) {
  auto* self = static_cast<NatsBus*>(closure);
  self->SetState(BusState::kDisconnected);
  absl::MutexLock lock(&self->closed_mu_);
  self->closed_ = true;
}

void NatsBus::OnError(natsConnection*, natsSubscription*, natsStatus err,
                      void* closure) {
  // A slow consumer means cnats dropped notices for us: repair by resolving.
  if (err == NATS_SLOW_CONSUMER) static_cast<NatsBus*>(closure)->Resync();
}

void NatsBus::SetState(BusState state) {
  if (state_.exchange(state) == state) return;
  absl::ReaderMutexLock lock(&handlers_mu_);
  if (running_ && handlers_.on_state) handlers_.on_state(state);
}

void NatsBus::Resync() {
  absl::ReaderMutexLock lock(&handlers_mu_);
  if (running_ && handlers_.on_resync) handlers_.on_resync();
}

void NatsBus::Stop() {
  {
    absl::WriterMutexLock lock(&handlers_mu_);
    running_ = false;
    handlers_ = BusHandlers{};
  }
  natsConnection* connection;
  {
    absl::MutexLock lock(&interest_mu_);
    for (auto& [subject, interest] : interest_) {
      if (interest.subscription != nullptr) {
        natsSubscription_Unsubscribe(interest.subscription);
        natsSubscription_Destroy(interest.subscription);
        interest.subscription = nullptr;
      }
    }
    interest_.clear();
    connection = connection_.exchange(nullptr);
  }
  if (connection == nullptr) return;
  natsConnection_Close(connection);
  {
    // The closed callback is the last one cnats runs for this connection.
    absl::MutexLock lock(&closed_mu_);
    closed_mu_.AwaitWithTimeout(absl::Condition(&closed_), absl::Seconds(5));
  }
  natsConnection_Destroy(connection);
  state_ = BusState::kDisconnected;
}

std::unique_ptr<Bus> NewNatsBus(NatsBusOptions options) {
  return std::make_unique<NatsBus>(std::move(options));
}

}  // namespace entitysync
