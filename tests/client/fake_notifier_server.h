// FakeNotifierServer is a real gRPC server on 127.0.0.1 (any free port)
// serving Notifier.Notify: it records each request and its `authorization`
// metadata and answers with a status the test chooses (OK: accepted = number
// of changes), optionally after a delay. Thread-safe.
#ifndef ENTITYSYNC_TESTS_CLIENT_FAKE_NOTIFIER_SERVER_H_
#define ENTITYSYNC_TESTS_CLIENT_FAKE_NOTIFIER_SERVER_H_

#include <memory>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "entitysync/v1/entitysync.grpc.pb.h"
#include "grpcpp/server.h"

namespace entitysync {
namespace testing {

class FakeNotifierServer final : public v1::Notifier::Service {
 public:
  FakeNotifierServer();
  ~FakeNotifierServer() override;

  bool ok() const { return port_ != 0; }
  std::string target() const;

  void set_status(grpc::Status status);
  void set_delay(absl::Duration delay);

  std::vector<v1::NotifyRequest> requests() const;
  std::vector<std::string> authorizations() const;

  grpc::Status Notify(grpc::ServerContext* context,
                      const v1::NotifyRequest* request,
                      v1::NotifyResponse* response) override;

 private:
  int port_ = 0;
  std::unique_ptr<grpc::Server> server_;

  mutable absl::Mutex mu_;
  grpc::Status status_ ABSL_GUARDED_BY(mu_);
  absl::Duration delay_ ABSL_GUARDED_BY(mu_) = absl::ZeroDuration();
  std::vector<v1::NotifyRequest> requests_ ABSL_GUARDED_BY(mu_);
  std::vector<std::string> authorizations_ ABSL_GUARDED_BY(mu_);
};

}  // namespace testing
}  // namespace entitysync

#endif  // ENTITYSYNC_TESTS_CLIENT_FAKE_NOTIFIER_SERVER_H_
