#include "server/rpc/health_service.h"

#include <utility>

#include "grpcpp/support/async_stream.h"

namespace entitysync {

using grpc::health::v1::HealthCheckRequest;
using grpc::health::v1::HealthCheckResponse;

// One Watch stream, on its I/O thread: the current status, then each change
// (the newest pending while a write is in flight). Ends when gRPC reports
// the call done (the client cancelled, or the server shut down).
class HealthService::WatchCall
    : public std::enable_shared_from_this<WatchCall> {
 public:
  WatchCall(HealthService* service, IoThread* thread)
      : service_(service), thread_(thread), live_(thread) {}

  static void Listen(HealthService* service, IoThread* thread) {
    auto watch = std::make_shared<WatchCall>(service, thread);
    watch->self_ = watch;
    watch->context_.AsyncNotifyWhenDone(&watch->done_tag_);
    service->RequestWatch(&watch->context_, &watch->request_, &watch->writer_,
                          thread->cq(), thread->cq(), &watch->accepted_tag_);
  }

  const std::string& service_name() const { return request_.service(); }
  IoThread* thread() const { return thread_; }

  // On the call's thread.
  void Offer(Status status) {
    if (done_) return;
    if (writing_) {
      pending_ = status;
      has_pending_ = true;
      return;
    }
    Write(status);
  }

 private:
  void OnAccepted(bool ok) {
    if (!ok) {
      self_.reset();  // shutting down: the call never started
      return;
    }
    Listen(service_, thread_);
    accepted_ = true;
    service_->AddWatch(shared_from_this());
    Offer(service_->StatusOf(request_.service()));
  }
  void Write(Status status) {
    writing_ = true;
    response_.set_status(status);
    writer_.Write(response_, &write_tag_);
  }
  void OnWritten(bool ok) {
    writing_ = false;
    if (ok && has_pending_ && !done_) {
      has_pending_ = false;
      Write(pending_);
      return;
    }
    MaybeRelease();
  }
  void OnDone(bool) {
    done_ = true;
    if (accepted_) service_->RemoveWatch(this);
    MaybeRelease();
  }
  void MaybeRelease() {
    if (done_ && !writing_) self_.reset();
  }

  HealthService* const service_;
  IoThread* const thread_;
  // Released last, once nothing of the call can start an operation.
  IoThread::LiveCall live_;
  grpc::ServerContext context_;
  HealthCheckRequest request_;
  HealthCheckResponse response_;
  grpc::ServerAsyncWriter<HealthCheckResponse> writer_{&context_};
  // Held while gRPC may still complete an operation of the call.
  std::shared_ptr<WatchCall> self_;
  // Touched on the call's thread only.
  bool accepted_ = false;
  bool writing_ = false;
  bool has_pending_ = false;
  Status pending_ = HealthCheckResponse::UNKNOWN;
  bool done_ = false;
  IoTagOf<WatchCall, &WatchCall::OnAccepted> accepted_tag_{this};
  IoTagOf<WatchCall, &WatchCall::OnWritten> write_tag_{this};
  IoTagOf<WatchCall, &WatchCall::OnDone> done_tag_{this};
};

HealthService::HealthService() = default;
HealthService::~HealthService() = default;

void HealthService::SetServingStatus(const std::string& service, bool serving) {
  const Status status =
      serving ? HealthCheckResponse::SERVING : HealthCheckResponse::NOT_SERVING;
  std::vector<std::shared_ptr<WatchCall>> watching;
  {
    absl::MutexLock lock(&mu_);
    statuses_[service] = status;
    for (const auto& [ptr, watch] : watches_) {
      if (watch->service_name() == service) watching.push_back(watch);
    }
  }
  for (const std::shared_ptr<WatchCall>& watch : watching) {
    watch->thread()->Post([watch, status] { watch->Offer(status); });
  }
}

HealthService::Status HealthService::StatusOf(
    const std::string& service) const {
  absl::MutexLock lock(&mu_);
  auto it = statuses_.find(service);
  return it == statuses_.end() ? HealthCheckResponse::SERVICE_UNKNOWN
                               : it->second;
}

void HealthService::AddWatch(const std::shared_ptr<WatchCall>& watch) {
  absl::MutexLock lock(&mu_);
  watches_.emplace(watch.get(), watch);
}

void HealthService::RemoveWatch(WatchCall* watch) {
  std::shared_ptr<WatchCall> removed;  // released with no lock held
  absl::MutexLock lock(&mu_);
  if (auto it = watches_.find(watch); it != watches_.end()) {
    removed = std::move(it->second);
    watches_.erase(it);
  }
}

void HealthService::Listen(IoThreads* threads) {
  CheckCall::ListenOnEach(
      threads,
      [this](auto&&... args) {
        RequestCheck(std::forward<decltype(args)>(args)...);
      },
      [this](CheckCall* call) { Check(call); }, /*notify_cancel=*/false,
      &check_methods_);
  for (size_t i = 0; i < threads->size(); ++i) {
    WatchCall::Listen(this, &threads->at(i));
  }
}

void HealthService::Check(CheckCall* call) {
  const Status status = StatusOf(call->request().service());
  if (status == HealthCheckResponse::SERVICE_UNKNOWN) {
    call->Finish(grpc::Status(grpc::StatusCode::NOT_FOUND, "unknown service"));
    return;
  }
  call->response()->set_status(status);
  call->Finish(grpc::Status::OK);
}

}  // namespace entitysync
