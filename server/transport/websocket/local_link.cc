#include "server/transport/websocket/local_link.h"

#include <optional>
#include <utility>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "common/grpc_status.h"
#include "grpcpp/impl/codegen/proto_utils.h"

namespace entitysync {

namespace net = gateway::net;

// The session's executor: the connection's strand, one per session. The
// session holds it and may outlive the gateway's io_context (a resolve
// still pending), so the strand is let go once the session has heard OnDone
// (Release): the session posts nothing after that (Session::Wake), and a
// strand must not outlive its io_context.
class LocalLink::StrandExecutor final : public SessionExecutor {
 public:
  using Strand = net::strand<net::io_context::executor_type>;

  explicit StrandExecutor(const net::any_io_executor& executor) {
    if (const Strand* strand = executor.target<Strand>()) strand_ = *strand;
  }

  void Post(absl::AnyInvocable<void() &&> task) override {
    absl::MutexLock lock(&mu_);
    if (!strand_.has_value()) return;
    net::post(*strand_,
              [task = std::move(task)]() mutable { std::move(task)(); });
  }

  bool IsCurrent() const override {
    absl::MutexLock lock(&mu_);
    return strand_.has_value() && strand_->running_in_this_thread();
  }

  bool Shared() const override { return false; }

  void Release() {
    absl::MutexLock lock(&mu_);
    strand_.reset();
  }

 private:
  mutable absl::Mutex mu_;
  std::optional<Strand> strand_ ABSL_GUARDED_BY(mu_);
};

gateway::SubscribeLinkFactory LocalLink::Factory(const SessionDeps* deps) {
  return [deps](const std::string& authorization, net::any_io_executor executor,
                Events events) -> std::shared_ptr<gateway::SubscribeLink> {
    auto link =
        std::make_shared<LocalLink>(std::move(executor), std::move(events));
    absl::StatusOr<std::shared_ptr<Session>> session = Session::Open(
        *deps, link->session_executor_, link.get(), authorization);
    if (!session.ok()) {
      link->End(ToGrpcStatus(session.status()));
    } else {
      link->session_ = *std::move(session);
    }
    return link;
  };
}

LocalLink::LocalLink(net::any_io_executor executor, Events events)
    : executor_(executor),
      events_(std::move(events)),
      session_executor_(std::make_shared<StrandExecutor>(executor)) {}

// The task End posted may never run (the gateway stopped its io_context
// first); destroying it destroys the link, and the session still hears
// OnDone.
LocalLink::~LocalLink() { DeliverOnDone(); }

void LocalLink::DeliverOnDone() {
  if (session_ == nullptr) return;
  std::shared_ptr<Session> session = std::move(session_);
  session->OnDone();
  session_executor_->Release();
}

size_t LocalLink::Write(v1::SubscribeRequest request) {
  // A closing session reads no more requests (as a gRPC stream stops
  // reading): none reaches the hub, a resolver or the pass-through backend.
  if (session_ != nullptr && !ended_ && !session_->closing()) {
    session_->OnRequest(request);
  }
  return 0;
}

void LocalLink::ReadNext() {
  if (!write_in_flight_ || ended_) return;
  EndWrite(/*ok=*/true);
}

void LocalLink::Cancel() {
  if (session_ == nullptr) return;
  if (!session_executor_->IsCurrent()) {
    // Abort: the gateway's threads have stopped, so nothing else runs on
    // the strand and nothing posted to it will run (End's OnDone task
    // included). End here; the caller drops the link without on_done.
    ended_ = true;
    events_ = Events();
    DeliverOnDone();
    return;
  }
  if (ended_) return;
  session_->OnCancel();
  // Messages still held by the connection will not be taken: the write
  // fails, and the session finishes (End) once it has heard so.
  if (write_in_flight_) EndWrite(/*ok=*/false);
}

void LocalLink::Write(OutboundBatch messages) {
  write_in_flight_ = true;
  gateway::LinkMessages handed;
  handed.reserve(messages.size());
  for (OutboundMessage& message : messages) {
    std::shared_ptr<SharedForms> forms = std::move(message.forms);
    if (forms == nullptr) forms = std::make_shared<SharedForms>();
    bool parsed = true;
    // The first connection to write the message parses it for all.
    forms->Get<gateway::ParsedResponse>(gateway::LinkMessage::kParsed, [&] {
      auto made = std::make_unique<gateway::ParsedResponse>();
      // The bytes are shared with every other subscriber; the parse reads
      // a copy of the references.
      grpc::ByteBuffer bytes = message.bytes;
      parsed = grpc::SerializationTraits<v1::SubscribeResponse>::Deserialize(
                   &bytes, &made->response)
                   .ok();
      return made;
    });
    if (!parsed) {
      // Never: the session serialized it. Fail the write rather than stall
      // the stream; the session closes it.
      CancelWrite();
      return;
    }
    handed.emplace_back(std::move(forms));
  }
  if (events_.on_message) events_.on_message(std::move(handed));
}

void LocalLink::EndWrite(bool ok) {
  write_in_flight_ = false;
  session_->OnWriteDone(ok);
}

void LocalLink::Finish(const grpc::Status& status) { End(status); }

void LocalLink::CancelWrite() {
  // Called from inside the session's Pump: fail the write from a task of
  // its own, as a gRPC stream's cancelled write completes later.
  net::post(executor_, [self = shared_from_this()] {
    if (!self->write_in_flight_ || self->ended_) return;
    if (self->events_.on_write_cancelled) self->events_.on_write_cancelled();
    self->EndWrite(/*ok=*/false);
  });
}

void LocalLink::End(const grpc::Status& status) {
  if (ended_) return;
  ended_ = true;
  Events events = std::move(events_);
  events_ = Events();
  if (events.on_done) events.on_done(status);
  if (session_ == nullptr) return;
  // Not inside the Pump that called Finish: the session hears OnDone from
  // a task of its own, after which it never calls this link again.
  net::post(executor_, [self = shared_from_this()] { self->DeliverOnDone(); });
}

}  // namespace entitysync
