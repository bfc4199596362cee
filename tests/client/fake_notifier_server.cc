#include "tests/client/fake_notifier_server.h"

#include <chrono>
#include <utility>

#include "absl/strings/str_cat.h"
#include "grpcpp/security/server_credentials.h"
#include "grpcpp/server_builder.h"
#include "grpcpp/server_context.h"

namespace entitysync {
namespace testing {

FakeNotifierServer::FakeNotifierServer() {
  grpc::ServerBuilder builder;
  int selected_port = 0;
  builder.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(),
                           &selected_port);
  builder.RegisterService(this);
  server_ = builder.BuildAndStart();
  if (server_ != nullptr) port_ = selected_port;
}

FakeNotifierServer::~FakeNotifierServer() {
  if (server_ != nullptr) {
    server_->Shutdown(std::chrono::system_clock::now());
    server_->Wait();
  }
}

std::string FakeNotifierServer::target() const {
  return absl::StrCat("127.0.0.1:", port_);
}

void FakeNotifierServer::set_status(grpc::Status status) {
  absl::MutexLock lock(&mu_);
  status_ = std::move(status);
}

void FakeNotifierServer::set_delay(absl::Duration delay) {
  absl::MutexLock lock(&mu_);
  delay_ = delay;
}

std::vector<v1::NotifyRequest> FakeNotifierServer::requests() const {
  absl::MutexLock lock(&mu_);
  return requests_;
}

std::vector<std::string> FakeNotifierServer::authorizations() const {
  absl::MutexLock lock(&mu_);
  return authorizations_;
}

grpc::Status FakeNotifierServer::Notify(grpc::ServerContext* context,
                                        const v1::NotifyRequest* request,
                                        v1::NotifyResponse* response) {
  grpc::Status status;
  absl::Duration delay;
  {
    absl::MutexLock lock(&mu_);
    requests_.push_back(*request);
    auto metadata = context->client_metadata().find("authorization");
    authorizations_.push_back(
        metadata == context->client_metadata().end()
            ? ""
            : std::string(metadata->second.data(), metadata->second.size()));
    status = status_;
    delay = delay_;
  }
  absl::SleepFor(delay);
  if (status.ok()) response->set_accepted(request->changes_size());
  return status;
}

}  // namespace testing
}  // namespace entitysync
