#include "server/rpc/await_call.h"

#include <algorithm>
#include <utility>

#include "absl/strings/str_cat.h"
#include "common/credentials.h"
#include "common/grpc_status.h"
#include "grpcpp/impl/codegen/proto_utils.h"
#include "server/core/entity_key.h"

namespace entitysync {
void AwaitCall::Start(Call* call, const AwaitDeps& deps) {
  const v1::AwaitRequest* request = &call->request();
  const v1::EntityKey& key = request->key();
  if (absl::Status s = ValidateKey(key, *deps.limits, KeyUse::kSubscribe);
      !s.ok()) {
    call->Finish(ToGrpcStatus(s));
    return;
  }
  if (IsWildcard(key)) {
    call->Finish(grpc::Status(grpc::StatusCode::INVALID_ARGUMENT,
                              "Await takes one id, not \"*\"; wildcards are "
                              "served by Subscribe"));
    return;
  }
  if (!deps.table->open_mode() && deps.table->Find(key.entity()) == nullptr) {
    call->Finish(
        grpc::Status(grpc::StatusCode::NOT_FOUND,
                     absl::StrCat("unknown entity '", key.entity(), "'")));
    return;
  }
  std::string credentials = ReadAuthorization(call->context());
  if (absl::Status s = CheckCredentialsSize("authorization", credentials,
                                            deps.limits->max_credentials_bytes);
      !s.ok()) {
    call->Finish(ToGrpcStatus(s));
    return;
  }
  absl::Duration timeout = request->timeout_ms() == 0
                               ? deps.limits->await_default_timeout
                               : absl::Milliseconds(request->timeout_ms());
  timeout = std::min(timeout, deps.limits->await_max_timeout);

  auto await = std::make_shared<AwaitCall>(call, timeout, deps);
  // From here on Close (shutdown) may answer the call at any moment; the
  // timer and the hold on itself exist before anyone can reach it.
  await->self_ = await;
  call->OnCancel([await] { await->OnCancel(); });
  call->OnDone([await] { await->OnDone(); });
  await->ArmTimer();
  if (grpc::Status status = deps.registry->TryAdd(await); !status.ok()) {
    {
      absl::MutexLock lock(&await->mu_);
      await->answered_ = true;
    }
    await->alarm_.Cancel();
    call->Finish(std::move(status));
    return;
  }
  await->Begin(credentials);
}

AwaitCall::AwaitCall(Call* call, absl::Duration timeout, const AwaitDeps& deps)
    : deps_(deps),
      key_(call->request().key()),
      key_string_(KeyString(call->request().key())),
      after_version_(
          call->request().has_after_version()
              ? std::optional<uint64_t>(call->request().after_version())
              : std::nullopt),
      timeout_(timeout),
      call_(call),
      response_(call->response()) {}

AwaitCall::~AwaitCall() = default;

void AwaitCall::ArmTimer() {
  std::weak_ptr<AwaitCall> weak = shared_from_this();
  // A weak reference: a pending timer must not keep a finished call alive
  // (destroying the alarm cancels it).
  alarm_.Set(absl::ToChronoTime(absl::Now() + timeout_), [weak](bool fired) {
    if (!fired) return;
    if (std::shared_ptr<AwaitCall> self = weak.lock()) self->OnTimeout();
  });
}

void AwaitCall::Begin(const std::string& credentials) {
  {
    absl::MutexLock lock(&mu_);
    if (answered_) return;  // closed by a shutdown meanwhile
    // Registered before the resolve so that no change during it is missed.
    deps_.hub->Add(key_, shared_from_this(), credentials);
    registered_ = true;
    if (deps_.table->open_mode()) {
      // No resolver, so no current state: wait for the next change.
      resolving_ = false;
      return;
    }
  }
  deps_.scheduler->ResolveForSubscribe(
      key_, credentials,
      [self = shared_from_this()](absl::StatusOr<Snapshot> snapshot) {
        self->OnSnapshot(std::move(snapshot));
      });
}

bool AwaitCall::IsNewer(uint64_t version) const {
  return version > after_version_.value_or(0);
}

void AwaitCall::OnSnapshot(absl::StatusOr<Snapshot> snapshot) {
  grpc::Status status;
  {
    absl::MutexLock lock(&mu_);
    if (answered_) return;
    if (!snapshot.ok()) {
      status = ToGrpcStatus(snapshot.status());
      AnswerLocked(status);
    } else {
      resolving_ = false;
      current_version_ = std::max(current_version_, snapshot->version);
      std::optional<OutboundMessage> held = std::move(held_);
      held_.reset();
      const bool at_once = !after_version_.has_value();
      if (held && held->version > snapshot->version &&
          (at_once || IsNewer(held->version))) {
        AnswerMessageLocked(*held);
        status = grpc::Status::OK;
      } else if (at_once || IsNewer(snapshot->version)) {
        v1::Update* update = response_->mutable_update();
        *update->mutable_key() = key_;
        update->set_version(snapshot->version);
        if (snapshot->status == v1::ResolvedKey::NOT_FOUND) {
          update->set_removed(true);
        } else {
          for (v1::Row& row : snapshot->rows) {
            *update->add_rows() = std::move(row);
          }
        }
        AnswerLocked(grpc::Status::OK);
      } else {
        return;  // nothing newer yet: wait
      }
    }
  }
  Complete(status);
}

void AwaitCall::Deliver(const OutboundMessage& msg) {
  // Await keys are never wildcards: only the key itself is delivered.
  if (msg.key_string != key_string_) return;
  grpc::Status status;
  {
    absl::MutexLock lock(&mu_);
    if (answered_) return;
    switch (msg.kind) {
      case OutboundMessage::Kind::kUpdate:
        if (resolving_) {
          if (!held_ || held_->version < msg.version) held_ = msg;
          return;
        }
        current_version_ = std::max(current_version_, msg.version);
        if (!IsNewer(msg.version)) return;
        AnswerMessageLocked(msg);
        status = grpc::Status::OK;
        break;
      case OutboundMessage::Kind::kRevoked:
        status = grpc::Status(grpc::StatusCode::PERMISSION_DENIED,
                              "access to the key was revoked");
        AnswerLocked(status);
        break;
      case OutboundMessage::Kind::kStale:
      case OutboundMessage::Kind::kControl:
        // Stale: the state may be old, but nothing newer exists to answer
        // with; keep waiting (the timeout bounds the wait).
        return;
    }
  }
  Complete(status);
}

void AwaitCall::OnTimeout() {
  {
    absl::MutexLock lock(&mu_);
    if (answered_) return;
    response_->set_timed_out(true);
    v1::Update* update = response_->mutable_update();
    *update->mutable_key() = key_;
    // Still resolving: nothing newer than the client's own version is known.
    update->set_version(resolving_ ? after_version_.value_or(0)
                                   : current_version_);
    AnswerLocked(grpc::Status::OK);
  }
  Complete(grpc::Status::OK);
}

void AwaitCall::Close(const grpc::Status& status) {
  {
    absl::MutexLock lock(&mu_);
    if (answered_) return;
    AnswerLocked(status);
  }
  Complete(status);
}

void AwaitCall::OnCancel() {
  Close(grpc::Status(grpc::StatusCode::CANCELLED, "the client cancelled"));
}

void AwaitCall::AnswerMessageLocked(const OutboundMessage& msg) {
  // Deserialize consumes its buffer; the copy shares the slices.
  grpc::ByteBuffer bytes(msg.bytes);
  v1::SubscribeResponse parsed;
  grpc::Status status =
      grpc::SerializationTraits<v1::SubscribeResponse>::Deserialize(&bytes,
                                                                    &parsed);
  if (!status.ok() || !parsed.has_update()) {
    AnswerLocked(grpc::Status(grpc::StatusCode::INTERNAL,
                              "an update could not be read back"));
    return;
  }
  *response_->mutable_update() = std::move(*parsed.mutable_update());
  AnswerLocked(grpc::Status::OK);
}

void AwaitCall::AnswerLocked(const grpc::Status& status) {
  answered_ = true;
  held_.reset();
  if (!status.ok()) response_->Clear();
  if (registered_) {
    registered_ = false;
    deps_.hub->Remove(key_, this);
  }
}

void AwaitCall::Complete(const grpc::Status& status) {
  // Lets the scheduler drop the key's state when nobody else holds it.
  if (!deps_.hub->HasSubscribers(key_)) deps_.scheduler->Forget(key_);
  alarm_.Cancel();
  call_->Finish(status);
}

void AwaitCall::OnDone() {
  // Every path to Finish went through AnswerLocked, which unregistered.
  deps_.registry->Remove(this);
  // May destroy this call; nothing may touch it afterwards.
  std::shared_ptr<AwaitCall> self = std::move(self_);
}

void CloseAllAwaits(AwaitRegistry* registry, const grpc::Status& status) {
  for (const std::shared_ptr<AwaitCall>& call :
       registry->StopAccepting(status)) {
    call->Close(status);
  }
}

}  // namespace entitysync
