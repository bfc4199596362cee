// FakeEntitySyncServer is a real gRPC server on 127.0.0.1 serving a small
// EntitySync that a test controls: it records every request and the
// `authorization` metadata of every stream, answers requests through a
// replaceable handler (by default: `subscribed`, then the snapshot set with
// SetSnapshot unless the request's known_version already equals it), and
// pushes messages to every open stream on demand.
//
// Thread-safe. Shutdown (also run by the destructor) cancels open streams at
// once, like a crashed replica.
#ifndef ENTITYSYNC_TESTS_CLIENT_FAKE_ENTITY_SYNC_SERVER_H_
#define ENTITYSYNC_TESTS_CLIENT_FAKE_ENTITY_SYNC_SERVER_H_

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "entitysync/v1/entitysync.grpc.pb.h"
#include "grpcpp/server.h"

namespace entitysync {
namespace testing {

v1::EntityKey Key(const std::string& entity, const std::string& id);
v1::SubscribeResponse UpdateMessage(const std::string& entity,
                                    const std::string& id, uint64_t version,
                                    const std::string& data = "");
v1::SubscribeResponse ErrorMessage(uint64_t request_id,
                                   const v1::EntityKey& key, int32_t code);
v1::SubscribeResponse SubscribedMessage(uint64_t request_id,
                                        const v1::EntityKey& key);

class FakeEntitySyncServer final : public v1::EntitySync::Service {
 public:
  // Returns the responses to write for one request.
  using Handler = std::function<std::vector<v1::SubscribeResponse>(
      const v1::SubscribeRequest&)>;

  // Listens on 127.0.0.1:`port`, 0 for any free port. Check ok().
  explicit FakeEntitySyncServer(int port = 0);
  ~FakeEntitySyncServer() override;

  bool ok() const { return port_ != 0; }
  int port() const { return port_; }
  std::string target() const;

  void Shutdown();

  void set_handler(Handler handler);
  void SetSnapshot(const std::string& entity, const std::string& id,
                   uint64_t version, const std::string& data = "");

  // Writes `message` on every open stream.
  void Push(const v1::SubscribeResponse& message);

  std::vector<v1::SubscribeRequest> requests() const;
  std::vector<v1::SubscribeRequest> subscribes() const;
  std::vector<std::string> authorizations() const;
  int streams_started() const;
  int streams_open() const;

  // Waits until `count` subscribe requests (all streams) have arrived.
  bool WaitForSubscribes(size_t count, absl::Duration timeout) const;
  // Waits until `count` requests of any kind have arrived.
  bool WaitForRequests(size_t count, absl::Duration timeout) const;
  bool WaitForStreamsStarted(int count, absl::Duration timeout) const;

  grpc::Status Subscribe(
      grpc::ServerContext* context,
      grpc::ServerReaderWriter<v1::SubscribeResponse, v1::SubscribeRequest>*
          stream) override;

 private:
  using Stream =
      grpc::ServerReaderWriter<v1::SubscribeResponse, v1::SubscribeRequest>;

  std::vector<v1::SubscribeResponse> DefaultAnswer(
      const v1::SubscribeRequest& request) const;
  size_t SubscribeCountLocked() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  int port_ = 0;
  std::unique_ptr<grpc::Server> server_;

  mutable absl::Mutex mu_;
  Handler handler_ ABSL_GUARDED_BY(mu_);
  absl::flat_hash_map<std::string, v1::Update> snapshots_ ABSL_GUARDED_BY(mu_);
  std::vector<v1::SubscribeRequest> requests_ ABSL_GUARDED_BY(mu_);
  std::vector<std::string> authorizations_ ABSL_GUARDED_BY(mu_);
  std::vector<Stream*> streams_ ABSL_GUARDED_BY(mu_);
  int streams_started_ ABSL_GUARDED_BY(mu_) = 0;
  // Serializes writes on each stream (handler answers and Push).
  absl::Mutex write_mu_;
};

}  // namespace testing
}  // namespace entitysync

#endif  // ENTITYSYNC_TESTS_CLIENT_FAKE_ENTITY_SYNC_SERVER_H_
