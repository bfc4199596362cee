#include "tests/client/fake_entity_sync_server.h"

#include <algorithm>
#include <utility>

#include "absl/strings/str_cat.h"
#include "grpcpp/security/server_credentials.h"
#include "grpcpp/server_builder.h"
#include "grpcpp/server_context.h"

namespace entitysync {
namespace testing {
namespace {

std::string SnapshotKey(const v1::EntityKey& key) {
  return absl::StrCat(key.entity(), "/", key.id());
}

}  // namespace

v1::EntityKey Key(const std::string& entity, const std::string& id) {
  v1::EntityKey key;
  key.set_entity(entity);
  key.set_id(id);
  return key;
}

v1::SubscribeResponse UpdateMessage(const std::string& entity,
                                    const std::string& id, uint64_t version,
                                    const std::string& data) {
  v1::SubscribeResponse message;
  v1::Update* update = message.mutable_update();
  *update->mutable_key() = Key(entity, id);
  update->set_version(version);
  v1::Row* row = update->add_rows();
  row->set_data(data);
  row->set_content_type("application/json");
  return message;
}

v1::SubscribeResponse ErrorMessage(uint64_t request_id,
                                   const v1::EntityKey& key, int32_t code) {
  v1::SubscribeResponse message;
  v1::Error* error = message.mutable_error();
  error->set_request_id(request_id);
  error->set_code(code);
  error->set_message(absl::StrCat("fake error ", code));
  *error->mutable_key() = key;
  return message;
}

v1::SubscribeResponse SubscribedMessage(uint64_t request_id,
                                        const v1::EntityKey& key) {
  v1::SubscribeResponse message;
  message.mutable_subscribed()->set_request_id(request_id);
  *message.mutable_subscribed()->mutable_key() = key;
  return message;
}

FakeEntitySyncServer::FakeEntitySyncServer(int port) {
  grpc::ServerBuilder builder;
  int selected_port = 0;
  builder.AddListeningPort(absl::StrCat("127.0.0.1:", port),
                           grpc::InsecureServerCredentials(), &selected_port);
  builder.RegisterService(this);
  server_ = builder.BuildAndStart();
  if (server_ != nullptr) port_ = selected_port;
}

FakeEntitySyncServer::~FakeEntitySyncServer() { Shutdown(); }

std::string FakeEntitySyncServer::target() const {
  return absl::StrCat("127.0.0.1:", port_);
}

void FakeEntitySyncServer::Shutdown() {
  if (server_ == nullptr) return;
  // A deadline in the past cancels open streams instead of waiting for them.
  server_->Shutdown(std::chrono::system_clock::now());
  server_->Wait();
  server_.reset();
}

void FakeEntitySyncServer::set_handler(Handler handler) {
  absl::MutexLock lock(&mu_);
  handler_ = std::move(handler);
}

void FakeEntitySyncServer::SetSnapshot(const std::string& entity,
                                       const std::string& id, uint64_t version,
                                       const std::string& data) {
  absl::MutexLock lock(&mu_);
  snapshots_[SnapshotKey(Key(entity, id))] =
      UpdateMessage(entity, id, version, data).update();
}

void FakeEntitySyncServer::Push(const v1::SubscribeResponse& message) {
  absl::MutexLock write_lock(&write_mu_);
  std::vector<Stream*> streams;
  {
    absl::MutexLock lock(&mu_);
    streams = streams_;
  }
  // A stream leaves streams_ only under write_mu_ (see Subscribe), so these
  // pointers stay valid here.
  for (Stream* stream : streams) stream->Write(message);
}

std::vector<v1::SubscribeResponse> FakeEntitySyncServer::DefaultAnswer(
    const v1::SubscribeRequest& request) const {
  std::vector<v1::SubscribeResponse> answer;
  if (request.has_unsubscribe()) {
    answer.emplace_back();
    v1::Unsubscribed* unsubscribed = answer.back().mutable_unsubscribed();
    unsubscribed->set_request_id(request.request_id());
    *unsubscribed->mutable_key() = request.unsubscribe().key();
    return answer;
  }
  if (!request.has_subscribe()) return answer;
  const v1::Subscribe& subscribe = request.subscribe();
  answer.push_back(SubscribedMessage(request.request_id(), subscribe.key()));
  absl::MutexLock lock(&mu_);
  auto snapshot = snapshots_.find(SnapshotKey(subscribe.key()));
  if (snapshot != snapshots_.end() && !subscribe.skip_snapshot() &&
      subscribe.known_version() != snapshot->second.version()) {
    answer.emplace_back();
    *answer.back().mutable_update() = snapshot->second;
  }
  return answer;
}

grpc::Status FakeEntitySyncServer::Subscribe(grpc::ServerContext* context,
                                             Stream* stream) {
  {
    absl::MutexLock lock(&mu_);
    ++streams_started_;
    auto metadata = context->client_metadata().find("authorization");
    authorizations_.push_back(
        metadata == context->client_metadata().end()
            ? ""
            : std::string(metadata->second.data(), metadata->second.size()));
  }
  {
    absl::MutexLock write_lock(&write_mu_);
    stream->SendInitialMetadata();
    absl::MutexLock lock(&mu_);
    streams_.push_back(stream);
  }
  v1::SubscribeRequest request;
  while (stream->Read(&request)) {
    Handler handler;
    {
      absl::MutexLock lock(&mu_);
      requests_.push_back(request);
      handler = handler_;
    }
    const std::vector<v1::SubscribeResponse> answer =
        handler ? handler(request) : DefaultAnswer(request);
    absl::MutexLock write_lock(&write_mu_);
    for (const v1::SubscribeResponse& message : answer) stream->Write(message);
  }
  absl::MutexLock write_lock(&write_mu_);
  absl::MutexLock lock(&mu_);
  streams_.erase(std::find(streams_.begin(), streams_.end(), stream));
  return grpc::Status::OK;
}

std::vector<v1::SubscribeRequest> FakeEntitySyncServer::requests() const {
  absl::MutexLock lock(&mu_);
  return requests_;
}

std::vector<v1::SubscribeRequest> FakeEntitySyncServer::subscribes() const {
  absl::MutexLock lock(&mu_);
  std::vector<v1::SubscribeRequest> subscribes;
  for (const v1::SubscribeRequest& request : requests_) {
    if (request.has_subscribe()) subscribes.push_back(request);
  }
  return subscribes;
}

std::vector<std::string> FakeEntitySyncServer::authorizations() const {
  absl::MutexLock lock(&mu_);
  return authorizations_;
}

int FakeEntitySyncServer::streams_started() const {
  absl::MutexLock lock(&mu_);
  return streams_started_;
}

int FakeEntitySyncServer::streams_open() const {
  absl::MutexLock lock(&mu_);
  return static_cast<int>(streams_.size());
}

size_t FakeEntitySyncServer::SubscribeCountLocked() const {
  return static_cast<size_t>(
      std::count_if(requests_.begin(), requests_.end(),
                    [](const v1::SubscribeRequest& request) {
                      return request.has_subscribe();
                    }));
}

bool FakeEntitySyncServer::WaitForSubscribes(size_t count,
                                             absl::Duration timeout) const {
  absl::MutexLock lock(&mu_);
  auto enough = [this, count]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    return SubscribeCountLocked() >= count;
  };
  return mu_.AwaitWithTimeout(absl::Condition(&enough), timeout);
}

bool FakeEntitySyncServer::WaitForRequests(size_t count,
                                           absl::Duration timeout) const {
  absl::MutexLock lock(&mu_);
  auto enough = [this, count]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    return requests_.size() >= count;
  };
  return mu_.AwaitWithTimeout(absl::Condition(&enough), timeout);
}

bool FakeEntitySyncServer::WaitForStreamsStarted(int count,
                                                 absl::Duration timeout) const {
  absl::MutexLock lock(&mu_);
  auto enough = [this, count]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    return streams_started_ >= count;
  };
  return mu_.AwaitWithTimeout(absl::Condition(&enough), timeout);
}

}  // namespace testing
}  // namespace entitysync
