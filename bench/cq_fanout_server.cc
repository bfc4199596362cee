#include "bench/cq_fanout_server.h"

#include "absl/container/flat_hash_set.h"
#include "grpcpp/generic/async_generic_service.h"

namespace entitysync {
namespace bench {

struct CqFanoutServer::Thread {
  grpc::AsyncGenericService* service = nullptr;
  IoThread* io = nullptr;
  // Touched only on `io`.
  absl::flat_hash_set<Call*> calls;
};

// One call; lives on its thread. Freed when gRPC reports it done and no
// operation is outstanding.
class CqFanoutServer::Call {
 public:
  static void Request(Thread* thread) {
    auto* call = new Call(thread);
    call->context_.AsyncNotifyWhenDone(&call->done_tag_);
    thread->service->RequestCall(&call->context_, &call->stream_,
                                 thread->io->cq(), thread->io->cq(),
                                 &call->accepted_tag_);
  }

  void Offer(const grpc::ByteBuffer& message) {
    if (closing_) return;
    if (writing_) {
      pending_ = message;
      has_pending_ = true;
      return;
    }
    StartWrite(message);
  }

 private:
  explicit Call(Thread* thread) : thread_(thread) {}

  void StartWrite(const grpc::ByteBuffer& message) {
    writing_ = true;
    ++outstanding_;
    stream_.Write(message, &write_tag_);
  }

  void OnAccepted(bool ok) {
    if (!ok) {
      delete this;
      return;
    }
    Request(thread_);
    outstanding_ += 2;  // the done notice and the read
    thread_->calls.insert(this);
    stream_.Read(&ignored_, &read_tag_);
  }
  void OnRead(bool ok) {
    --outstanding_;
    if (ok) {
      // The client sends nothing in this protocol; ignore what it does.
      ++outstanding_;
      ignored_.Clear();
      stream_.Read(&ignored_, &read_tag_);
      return;
    }
    closing_ = true;  // half-closed or gone
    MaybeFinish();
    MaybeDelete();
  }
  void OnWritten(bool ok) {
    --outstanding_;
    writing_ = false;
    if (!ok) closing_ = true;
    if (!closing_ && has_pending_) {
      has_pending_ = false;
      StartWrite(pending_);
      pending_.Clear();
    }
    MaybeFinish();
    MaybeDelete();
  }
  void OnFinished(bool) {
    --outstanding_;
    MaybeDelete();
  }
  void OnDone(bool) {
    --outstanding_;
    done_ = true;
    closing_ = true;
    thread_->calls.erase(this);
    MaybeDelete();
  }
  void MaybeFinish() {
    if (!closing_ || writing_ || finished_ || done_) return;
    finished_ = true;
    ++outstanding_;
    stream_.Finish(grpc::Status::OK, &finish_tag_);
  }
  void MaybeDelete() {
    if (done_ && outstanding_ == 0) delete this;
  }

  Thread* const thread_;
  grpc::GenericServerContext context_;
  grpc::GenericServerAsyncReaderWriter stream_{&context_};
  grpc::ByteBuffer ignored_;
  grpc::ByteBuffer pending_;
  bool has_pending_ = false;
  bool writing_ = false;
  bool closing_ = false;
  bool finished_ = false;
  bool done_ = false;
  int outstanding_ = 0;
  IoTagOf<Call, &Call::OnAccepted> accepted_tag_{this};
  IoTagOf<Call, &Call::OnRead> read_tag_{this};
  IoTagOf<Call, &Call::OnWritten> write_tag_{this};
  IoTagOf<Call, &Call::OnFinished> finish_tag_{this};
  IoTagOf<Call, &Call::OnDone> done_tag_{this};
};

CqFanoutServer::CqFanoutServer(grpc::ServerBuilder* builder, int io_threads)
    : io_threads_((builder->RegisterAsyncGenericService(&service_), builder),
                  io_threads) {}

CqFanoutServer::~CqFanoutServer() { Shutdown(); }

void CqFanoutServer::Start() {
  for (size_t i = 0; i < io_threads_.size(); ++i) {
    auto thread = std::make_unique<Thread>();
    thread->service = &service_;
    thread->io = &io_threads_.at(i);
    for (int n = 0; n < 8; ++n) Call::Request(thread.get());
    threads_.push_back(std::move(thread));
  }
  io_threads_.Start();
}

void CqFanoutServer::Offer(const grpc::ByteBuffer& message) {
  for (const auto& thread : threads_) {
    thread->io->Post([thread = thread.get(), message] {
      for (Call* call : thread->calls) call->Offer(message);
    });
  }
}

void CqFanoutServer::Shutdown() { io_threads_.Shutdown(); }

}  // namespace bench
}  // namespace entitysync
