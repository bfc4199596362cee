#include "server/session/session.h"

#include <algorithm>
#include <utility>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "common/credentials.h"
#include "common/grpc_status.h"
#include "common/status_macros.h"
#include "common/utf8.h"
#include "server/core/entity_key.h"

namespace entitysync {
namespace {

OutboundMessage Control(const v1::SubscribeResponse& response) {
  return EncodeOutbound(response, OutboundMessage::Kind::kControl);
}

}  // namespace

absl::StatusOr<std::shared_ptr<Session>> Session::Open(
    const SessionDeps& deps, std::shared_ptr<SessionExecutor> executor,
    SessionTransport* transport, std::string credentials) {
  RETURN_IF_ERROR(CheckCredentialsSize("authorization", credentials,
                                       deps.limits->max_credentials_bytes));
  auto session = std::make_shared<Session>(deps, std::move(executor), transport,
                                           std::move(credentials));
  if (grpc::Status status = deps.registry->TryAdd(session); !status.ok()) {
    return FromGrpcStatus(status);
  }
  return session;
}

Session::Session(const SessionDeps& deps,
                 std::shared_ptr<SessionExecutor> executor,
                 SessionTransport* transport, std::string credentials)
    : deps_(deps),
      executor_(std::move(executor)),
      transport_(transport),
      credentials_(std::make_shared<const std::string>(std::move(credentials))),
      queue_(deps.limits->max_outbound_queue_bytes),
      rate_tokens_(
          static_cast<double>(deps.limits->max_subscriptions_per_stream)),
      rate_refilled_(absl::Now()) {}

Session::~Session() = default;

void Session::OnRequest(const v1::SubscribeRequest& request) {
  HandleRequest(request);
  Pump();
}

void Session::OnMalformedRequest() {
  {
    absl::MutexLock lock(&mu_);
    PushErrorLocked(
        0,
        absl::InvalidArgumentError(
            "malformed SubscribeRequest (not a valid protobuf, or a "
            "string field is not UTF-8)"),
        nullptr);
  }
  Pump();
}

bool Session::closing() const {
  absl::MutexLock lock(&mu_);
  return closing_;
}

void Session::HandleRequest(const v1::SubscribeRequest& request) {
  const uint64_t id = request.request_id();
  switch (request.kind_case()) {
    case v1::SubscribeRequest::kSubscribe:
      HandleSubscribe(id, request.subscribe());
      return;
    case v1::SubscribeRequest::kUnsubscribe:
      HandleUnsubscribe(id, request.unsubscribe());
      return;
    case v1::SubscribeRequest::kAuthenticate:
      HandleAuthenticate(id, request.authenticate());
      return;
    case v1::SubscribeRequest::kPassthrough:
      HandlePassthrough(id, request.passthrough());
      return;
    case v1::SubscribeRequest::KIND_NOT_SET:
      break;
  }
  absl::MutexLock lock(&mu_);
  PushErrorLocked(id, absl::InvalidArgumentError("request has no kind set"),
                  nullptr);
}

bool Session::TakeRateToken() {
  const absl::Time now = absl::Now();
  const double capacity =
      static_cast<double>(deps_.limits->max_subscriptions_per_stream);
  rate_tokens_ = std::min(
      capacity, rate_tokens_ + absl::ToDoubleSeconds(now - rate_refilled_) *
                                   deps_.limits->subscribe_rate_per_second);
  rate_refilled_ = now;
  if (rate_tokens_ < 1) return false;
  rate_tokens_ -= 1;
  return true;
}

void Session::HandleSubscribe(uint64_t request_id,
                              const v1::Subscribe& subscribe) {
  const v1::EntityKey& key = subscribe.key();
  const std::string key_string = KeyString(key);
  uint64_t generation;
  std::string credentials;
  {
    absl::MutexLock lock(&mu_);
    if (absl::Status s = ValidateKey(key, *deps_.limits, KeyUse::kSubscribe);
        !s.ok()) {
      PushErrorLocked(request_id, s, &key);
      return;
    }
    if (!deps_.table->open_mode() &&
        deps_.table->Find(key.entity()) == nullptr) {
      PushErrorLocked(request_id,
                      absl::NotFoundError(
                          absl::StrCat("unknown entity '", key.entity(), "'")),
                      &key);
      return;
    }
    if (!TakeRateToken()) {
      PushErrorLocked(
          request_id,
          absl::ResourceExhaustedError(absl::StrCat(
              "subscribe rate over ", deps_.limits->subscribe_rate_per_second,
              " per second; retry later")),
          &key);
      return;
    }
    if (!subscriptions_.contains(key_string) &&
        subscriptions_.size() >= deps_.limits->max_subscriptions_per_stream) {
      PushErrorLocked(request_id,
                      absl::ResourceExhaustedError(absl::StrCat(
                          "stream has ", subscriptions_.size(),
                          " subscriptions; the limit is ",
                          deps_.limits->max_subscriptions_per_stream)),
                      &key);
      return;
    }
    // A repeated subscribe keeps last_version: versions never go back.
    Subscription& sub = subscriptions_[key_string];
    if (sub.pending && sub.generation != 0) {
      PushSupersededLocked(sub, request_id, "subscribe", key);
    }
    sub.pending = true;
    sub.request_id = request_id;
    sub.generation = generation = ++next_generation_;
    sub.held.reset();
    credentials = *credentials_;
    // Registered before the resolve so that no change during it is missed.
    deps_.hub->Add(key, shared_from_this(), credentials_);
  }
  if (deps_.table->open_mode()) {
    Snapshot none;
    none.version = 0;
    v1::Subscribe no_snapshot = subscribe;
    no_snapshot.set_skip_snapshot(true);
    OnSnapshot(key_string, generation, request_id, no_snapshot,
               std::move(none));
    return;
  }
  deps_.scheduler->ResolveForSubscribe(
      key, credentials,
      [self = shared_from_this(), key_string, generation, request_id,
       subscribe](absl::StatusOr<Snapshot> snapshot) {
        self->OnSnapshot(key_string, generation, request_id, subscribe,
                         std::move(snapshot));
        self->Wake();
      });
}

void Session::OnSnapshot(const std::string& key_string, uint64_t generation,
                         uint64_t request_id, const v1::Subscribe& subscribe,
                         absl::StatusOr<Snapshot> snapshot) {
  const v1::EntityKey& key = subscribe.key();
  {
    absl::MutexLock lock(&mu_);
    auto it = subscriptions_.find(key_string);
    // Unsubscribed (or subscribed again) meanwhile: this request has had its
    // `superseded` error (PushSupersededLocked), the later one answers.
    if (done_ || it == subscriptions_.end() ||
        it->second.generation != generation) {
      return;
    }
    if (!snapshot.ok()) {
      subscriptions_.erase(it);
      RemoveFromHubLocked(key);
      PushErrorLocked(request_id, snapshot.status(), &key);
    } else {
      Subscription& sub = it->second;
      sub.pending = false;
      v1::SubscribeResponse subscribed;
      subscribed.mutable_subscribed()->set_request_id(request_id);
      *subscribed.mutable_subscribed()->mutable_key() = key;
      PushLocked(Control(subscribed));
      const uint64_t known = subscribe.known_version();
      const uint64_t previous = sub.last_version;
      sub.last_version = std::max({known, previous, snapshot->version});
      // known_version 0 means "nothing known": send the snapshot, unless
      // this stream already had a newer or equal version of the key.
      const bool newer_than_known = known == 0 || known < snapshot->version;
      const bool newer_than_sent =
          previous == 0 || previous < snapshot->version;
      if (!subscribe.skip_snapshot() && newer_than_known && newer_than_sent) {
        v1::SubscribeResponse response;
        v1::Update* update = response.mutable_update();
        *update->mutable_key() = key;
        update->set_version(snapshot->version);
        if (snapshot->status == v1::ResolvedKey::NOT_FOUND) {
          update->set_removed(true);
        } else {
          for (v1::Row& row : snapshot->rows)
            *update->add_rows() = std::move(row);
        }
        PushLocked(EncodeOutbound(response, OutboundMessage::Kind::kUpdate,
                                  key_string, snapshot->version));
      }
      // Changes that arrived while the snapshot was being resolved: for the
      // key itself only when newer; for a wildcard's ids, all (the scheduler
      // ordered them per key).
      if (sub.held != nullptr) {
        for (auto& [held_key, held] : sub.held->messages) {
          if (held_key != key_string) {
            PushLocked(std::move(held));
          } else if (held.version > sub.last_version) {
            sub.last_version = held.version;
            PushLocked(std::move(held));
          }
        }
        sub.held.reset();
      }
      return;
    }
  }
  ForgetIfUnused(key);
}

void Session::HandleUnsubscribe(uint64_t request_id,
                                const v1::Unsubscribe& unsubscribe) {
  const v1::EntityKey& key = unsubscribe.key();
  {
    absl::MutexLock lock(&mu_);
    if (absl::Status s = ValidateKey(key, *deps_.limits, KeyUse::kSubscribe);
        !s.ok()) {
      PushErrorLocked(request_id, s, &key);
      return;
    }
    if (!TakeRateToken()) {
      PushErrorLocked(
          request_id,
          absl::ResourceExhaustedError("unsubscribe rate over the limit"),
          &key);
      return;
    }
    const std::string key_string = KeyString(key);
    auto it = subscriptions_.find(key_string);
    if (it == subscriptions_.end()) {
      PushErrorLocked(request_id,
                      absl::NotFoundError(
                          absl::StrCat("not subscribed to ", DescribeKey(key))),
                      &key);
      return;
    }
    if (it->second.pending) {
      PushSupersededLocked(it->second, request_id, "unsubscribe", key);
    }
    subscriptions_.erase(it);
    RemoveFromHubLocked(key);
    // No rows for the key after `unsubscribed`: drop what is still queued.
    if (IsWildcard(key)) {
      const std::string prefix = absl::StrCat(key.entity(), "/");
      queue_.DropKeys([&](absl::string_view ks) {
        return absl::StartsWith(ks, prefix) && !subscriptions_.contains(ks);
      });
    } else {
      const bool wildcard_held =
          subscriptions_.contains(KeyString(WildcardKey(key.entity())));
      if (!wildcard_held) {
        queue_.DropKeys([&](absl::string_view ks) { return ks == key_string; });
      }
    }
    v1::SubscribeResponse response;
    response.mutable_unsubscribed()->set_request_id(request_id);
    *response.mutable_unsubscribed()->mutable_key() = key;
    PushLocked(Control(response));
  }
  ForgetIfUnused(key);
}

void Session::HandleAuthenticate(uint64_t request_id,
                                 const v1::Authenticate& authenticate) {
  absl::MutexLock lock(&mu_);
  if (absl::Status s = CheckCredentialsSize(
          "secret", authenticate.secret(), deps_.limits->max_credentials_bytes);
      !s.ok()) {
    PushErrorLocked(request_id, s, nullptr);
    return;
  }
  credentials_ = std::make_shared<const std::string>(authenticate.secret());
  v1::SubscribeResponse response;
  response.mutable_authenticated()->set_request_id(request_id);
  PushLocked(Control(response));
}

void Session::HandlePassthrough(uint64_t request_id,
                                const v1::Passthrough& passthrough) {
  v1::PassthroughRequest request;
  {
    absl::MutexLock lock(&mu_);
    if (deps_.passthrough == nullptr) {
      PushErrorLocked(
          request_id,
          absl::FailedPreconditionError(
              "no pass-through backend is configured on this server"),
          nullptr);
      return;
    }
    if (passthrough.data().size() > deps_.limits->max_passthrough_bytes) {
      PushErrorLocked(
          request_id,
          absl::InvalidArgumentError(absl::StrCat(
              "passthrough data is ", passthrough.data().size(),
              " bytes; the limit is ", deps_.limits->max_passthrough_bytes)),
          nullptr);
      return;
    }
    if (passthrough_in_flight_ >= deps_.limits->max_passthrough_in_flight) {
      PushErrorLocked(request_id,
                      absl::ResourceExhaustedError(absl::StrCat(
                          "more than ", deps_.limits->max_passthrough_in_flight,
                          " pass-through requests in flight")),
                      nullptr);
      return;
    }
    ++passthrough_in_flight_;
    request.set_credentials(*credentials_);
    request.set_data(passthrough.data());
  }
  deps_.passthrough->Handle(
      request, [self = shared_from_this(),
                request_id](absl::StatusOr<v1::PassthroughResponse> response) {
        {
          absl::MutexLock lock(&self->mu_);
          --self->passthrough_in_flight_;
          if (!response.ok()) {
            self->PushErrorLocked(
                request_id,
                absl::Status(response.status().code(),
                             absl::StrCat("pass-through backend: ",
                                          response.status().message())),
                nullptr);
          } else {
            // Answered even without a reply: every request gets one answer.
            v1::SubscribeResponse reply;
            reply.mutable_passthrough_reply()->set_request_id(request_id);
            if (response->has_reply()) {
              reply.mutable_passthrough_reply()->set_data(response->data());
            } else {
              reply.mutable_passthrough_reply()->set_no_reply(true);
            }
            self->PushLocked(Control(reply));
          }
        }
        self->Wake();
      });
}

void Session::Deliver(const OutboundMessage& msg) {
  bool revoked = false;
  v1::EntityKey revoked_key;
  {
    absl::MutexLock lock(&mu_);
    if (closing_ || done_) return;
    auto it = subscriptions_.find(msg.key_string);
    if (it != subscriptions_.end()) {
      Subscription& sub = it->second;
      if (sub.pending) {
        if (msg.kind == OutboundMessage::Kind::kUpdate) HoldLocked(sub, msg);
        return;
      }
      if (msg.kind == OutboundMessage::Kind::kUpdate) {
        if (msg.version < sub.last_version ||
            (msg.version == sub.last_version && !msg.refresh)) {
          return;
        }
        sub.last_version = msg.version;
      } else if (msg.kind == OutboundMessage::Kind::kRevoked) {
        revoked = true;
        revoked_key = KeyOfKeyString(msg.key_string);
        subscriptions_.erase(it);
        RemoveFromHubLocked(revoked_key);
        queue_.DropKeys(
            [&](absl::string_view ks) { return ks == msg.key_string; });
      }
    } else {
      // Through a wildcard; the scheduler delivers each key in order.
      auto w = subscriptions_.find(
          KeyString(WildcardKey(EntityOfKeyString(msg.key_string))));
      if (w == subscriptions_.end() ||
          msg.kind == OutboundMessage::Kind::kRevoked) {
        return;
      }
      if (w->second.pending) {
        if (msg.kind == OutboundMessage::Kind::kUpdate) {
          HoldLocked(w->second, msg);
        }
        return;
      }
    }
    if (write_in_flight_ && !queue_.empty() &&
        absl::Now() - write_started_ > deps_.limits->write_stall_timeout) {
      CloseSlowLocked(grpc::Status(grpc::StatusCode::RESOURCE_EXHAUSTED,
                                   "client is not reading its updates"),
                      /*cancel_write=*/true);
    } else {
      PushLocked(msg);
    }
  }
  if (revoked) ForgetIfUnused(revoked_key);
  Wake();
}

void Session::HoldLocked(Subscription& sub, const OutboundMessage& msg) {
  if (sub.held == nullptr) sub.held = std::make_unique<Held>();
  Held& held = *sub.held;
  auto [it, inserted] = held.messages.try_emplace(msg.key_string, msg);
  if (!inserted) {
    if (it->second.version >= msg.version) return;
    held.bytes -= it->second.size;
    it->second = msg;
  }
  held.bytes += msg.size;
  if (held.bytes > deps_.limits->max_outbound_queue_bytes) {
    CloseSlowLocked(
        grpc::Status(grpc::StatusCode::RESOURCE_EXHAUSTED,
                     "too many changes while subscribing; reconnect"),
        /*cancel_write=*/true);
  }
}

void Session::RemoveFromHubLocked(const v1::EntityKey& key) {
  deps_.hub->Remove(key, this);
}

void Session::ForgetIfUnused(const v1::EntityKey& key) {
  if (!deps_.hub->HasSubscribers(key)) deps_.scheduler->Forget(key);
}

void Session::CloseSlowLocked(const grpc::Status& status, bool cancel_write) {
  if (!closing_ && deps_.counters != nullptr) {
    Bump(deps_.counters->slow_consumer_disconnects);
    Bump(deps_.counters->updates_dropped, queue_.size());
  }
  CloseLocked(status, cancel_write);
}

void Session::PushLocked(OutboundMessage msg) {
  if (closing_) return;
  const OutboundQueue::PushResult pushed = queue_.Push(std::move(msg));
  if (pushed == OutboundQueue::PushResult::kConflated &&
      deps_.counters != nullptr) {
    Bump(deps_.counters->updates_conflated);
  }
  if (pushed == OutboundQueue::PushResult::kOverflow) {
    CloseSlowLocked(
        grpc::Status(grpc::StatusCode::RESOURCE_EXHAUSTED,
                     absl::StrCat("outbound queue over ",
                                  deps_.limits->max_outbound_queue_bytes,
                                  " bytes: client is not keeping up")),
        /*cancel_write=*/true);
  }
}

void Session::PushErrorLocked(uint64_t request_id, const absl::Status& status,
                              const v1::EntityKey* key) {
  v1::SubscribeResponse response;
  v1::Error* error = response.mutable_error();
  error->set_request_id(request_id);
  error->set_code(static_cast<int>(status.code()));
  error->set_message(std::string(status.message()));
  if (key != nullptr) {
    // Echoed keys are cut to the limits on a character boundary: the
    // answer must stay valid UTF-8 whatever the client sent.
    error->mutable_key()->set_entity(std::string(
        TruncateUtf8(key->entity(), deps_.limits->max_entity_bytes)));
    error->mutable_key()->set_id(
        std::string(TruncateUtf8(key->id(), deps_.limits->max_id_bytes)));
  }
  PushLocked(Control(response));
}

void Session::PushSupersededLocked(const Subscription& sub, uint64_t request_id,
                                   absl::string_view request_kind,
                                   const v1::EntityKey& key) {
  v1::SubscribeResponse response;
  v1::Error* error = response.mutable_error();
  error->set_request_id(sub.request_id);
  error->set_code(static_cast<int>(absl::StatusCode::kAborted));
  error->set_message(absl::StrCat("superseded by ", request_kind, " request ",
                                  request_id,
                                  " for the same key before its snapshot"));
  // The key passed validation: no need to cut it.
  *error->mutable_key() = key;
  error->set_superseded(true);
  PushLocked(Control(response));
}

void Session::GoAway(absl::Duration reconnect_within) {
  {
    absl::MutexLock lock(&mu_);
    v1::SubscribeResponse response;
    response.mutable_goaway()->set_reconnect_within_ms(
        static_cast<uint32_t>(absl::ToInt64Milliseconds(reconnect_within)));
    PushLocked(Control(response));
  }
  Wake();
}

void Session::Close(const grpc::Status& status, bool cancel_write) {
  {
    absl::MutexLock lock(&mu_);
    CloseLocked(status, cancel_write);
  }
  Wake();
}

void Session::CloseLocked(const grpc::Status& status, bool cancel_write) {
  if (closing_) return;
  closing_ = true;
  close_status_ = status;
  queue_.Clear();
  if (cancel_write && write_in_flight_) cancel_requested_ = true;
}

void Session::Wake() {
  if (executor_->IsCurrent()) {
    Pump();
    return;
  }
  {
    absl::MutexLock lock(&mu_);
    if (wake_posted_ || done_) return;
    wake_posted_ = true;
  }
  absl::AnyInvocable<void()&&> pump = [self = shared_from_this()] {
    {
      absl::MutexLock lock(&self->mu_);
      self->wake_posted_ = false;
    }
    self->Pump();
  };
  // In a fan-out, one task per I/O thread wakes all its sessions.
  if (!DeliveryBatch::Add(executor_.get(), pump)) {
    executor_->Post(std::move(pump));
  }
}

void Session::Pump() {
  SessionTransport* transport;
  bool cancel = false;
  bool finish = false;
  grpc::Status finish_status;
  OutboundBatch write;
  {
    absl::MutexLock lock(&mu_);
    transport = transport_;
    if (transport == nullptr || finish_called_) return;
    if (cancel_requested_) {
      cancel_requested_ = false;
      cancel = write_in_flight_;
    }
    if (!write_in_flight_) {
      if (closing_) {
        finish_called_ = true;
        finish = true;
        finish_status = close_status_;
      } else if (!(write =
                       queue_.PopBatch(transport->TakesSeveral()
                                           ? deps_.limits->max_write_batch_bytes
                                           : 0))
                      .empty()) {
        if (deps_.counters != nullptr) {
          Bump(deps_.counters->updates_delivered,
               std::count_if(write.begin(), write.end(), [](const auto& m) {
                 return m.kind == OutboundMessage::Kind::kUpdate;
               }));
        }
        write_in_flight_ = true;
        write_started_ = absl::Now();
      }
    }
  }
  // The stream is touched with no lock held. A cancelled write fails;
  // OnWriteDone then lets Finish run.
  if (cancel) transport->CancelWrite();
  if (finish) transport->Finish(finish_status);
  if (!write.empty()) transport->Write(std::move(write));
}

void Session::OnWriteDone(bool ok) {
  {
    absl::MutexLock lock(&mu_);
    write_in_flight_ = false;
    if (!ok && !closing_) {
      closing_ = true;
      close_status_ = grpc::Status(grpc::StatusCode::CANCELLED, "write failed");
      queue_.Clear();
    }
  }
  Pump();
}

void Session::OnCancel() {
  {
    absl::MutexLock lock(&mu_);
    if (!closing_) {
      closing_ = true;
      close_status_ = grpc::Status(grpc::StatusCode::CANCELLED, "cancelled");
      queue_.Clear();
    }
  }
  Pump();
}

void Session::OnDone() {
  std::vector<v1::EntityKey> keys;
  {
    absl::MutexLock lock(&mu_);
    done_ = true;
    transport_ = nullptr;
    keys.reserve(subscriptions_.size());
    for (const auto& [key_string, sub] : subscriptions_) {
      keys.push_back(KeyOfKeyString(key_string));
      RemoveFromHubLocked(keys.back());
    }
    subscriptions_.clear();
    queue_.Clear();
  }
  for (const v1::EntityKey& key : keys) ForgetIfUnused(key);
  deps_.registry->Remove(this);
}

}  // namespace entitysync
