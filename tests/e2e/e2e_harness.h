// Harness for end-to-end tests: the real entitysync server, the real SQLite
// items resolver over gRPC, and raw client streams that record every server
// message. Ports are chosen at run time; the database lives in TEST_TMPDIR.
#ifndef ENTITYSYNC_TESTS_E2E_E2E_HARNESS_H_
#define ENTITYSYNC_TESTS_E2E_E2E_HARNESS_H_

#include <cstdlib>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "client/subscriber.h"
#include "entitysync/v1/entitysync.grpc.pb.h"
#include "examples/items/items_resolver.h"
#include "examples/items/items_store.h"
#include "grpcpp/generic/generic_stub.h"
#include "grpcpp/grpcpp.h"
#include "gtest/gtest.h"
#include "server/server.h"
#include "tests/testing/wait.h"

namespace entitysync::testing {

inline std::string TempPath(const std::string& name) {
  const char* dir = std::getenv("TEST_TMPDIR");
  static int counter = 0;
  return absl::StrCat(dir != nullptr ? dir : "/tmp", "/", name, "-", getpid(),
                      "-", ++counter);
}

// The items resolver over a fresh SQLite file, served on 127.0.0.1:0.
class ItemsBackend {
 public:
  // db_path empty: a new database. Several backends may share one file (one
  // per replica, so that resolver calls can be counted per replica).
  explicit ItemsBackend(absl::Duration delay = absl::ZeroDuration(),
                        std::string db_path = "") {
    if (db_path.empty()) db_path = TempPath("items.db");
    auto store = examples::ItemsStore::Open(db_path);
    EXPECT_TRUE(store.ok()) << store.status();
    store_ = *std::move(store);
    examples::ItemsResolver::Options options;
    options.delay = delay;
    resolver_ =
        std::make_unique<examples::ItemsResolver>(store_.get(), options);
    grpc::ServerBuilder builder;
    builder.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(),
                             &port_);
    builder.RegisterService(resolver_.get());
    server_ = builder.BuildAndStart();
  }
  ~ItemsBackend() { server_->Shutdown(); }

  // Writes the item; returns its new version.
  uint64_t Set(const std::string& id, const std::string& name,
               std::vector<std::string> tags = {},
               std::vector<std::string> acl = {}) {
    examples::ItemChange change;
    change.id = id;
    change.name = name;
    change.tags = std::move(tags);
    change.acl = std::move(acl);
    auto version = store_->Upsert(change);
    EXPECT_TRUE(version.ok()) << version.status();
    return version.ok() ? *version : 0;
  }
  uint64_t Delete(const std::string& id) {
    auto version = store_->Delete(id);
    EXPECT_TRUE(version.ok()) << version.status();
    return version.ok() ? *version : 0;
  }
  std::string target() const { return absl::StrCat("127.0.0.1:", port_); }
  uint64_t calls() const { return resolver_->calls(); }

 private:
  std::unique_ptr<examples::ItemsStore> store_;
  std::unique_ptr<examples::ItemsResolver> resolver_;
  std::unique_ptr<grpc::Server> server_;
  int port_ = 0;
};

inline v1::ServerConfig ItemsConfig(const std::string& target) {
  v1::ServerConfig config;
  v1::EntityConfig* items = config.add_entities();
  items->set_name("items");
  items->mutable_resolver()->set_target(target);
  items->mutable_resolver()->set_timeout_ms(2000);
  items->set_max_batch_keys(100);
  items->set_max_concurrent_resolves(4);
  return config;
}

inline std::unique_ptr<EntitySyncServer> StartServer(ServerOptions options) {
  auto server = EntitySyncServer::Start(std::move(options));
  EXPECT_TRUE(server.ok()) << server.status();
  return server.ok() ? *std::move(server) : nullptr;
}

inline std::shared_ptr<grpc::Channel> Channel(int port) {
  return grpc::CreateChannel(absl::StrCat("127.0.0.1:", port),
                             grpc::InsecureChannelCredentials());
}

inline std::shared_ptr<grpc::Channel> SmallWindowChannel(int port) {
  grpc::ChannelArguments args;
  args.SetInt(GRPC_ARG_HTTP2_BDP_PROBE, 0);
  args.SetInt(GRPC_ARG_HTTP2_STREAM_LOOKAHEAD_BYTES, 16 << 10);
  // A channel of its own, not shared with the healthy client's connection.
  args.SetInt("entitysync.test.unique", port + 1);
  return grpc::CreateCustomChannel(absl::StrCat("127.0.0.1:", port),
                                   grpc::InsecureChannelCredentials(), args);
}

// One Subscribe stream with a thread that records every server message.
class RawStream {
 public:
  struct Options {
    std::string authorization;
    // false: never read (a client that stopped reading).
    bool read = true;
    absl::Duration deadline = absl::Seconds(60);
    // Like a hung process: the client's transport does not grow its window
    // (no BDP probing), so unread messages back up to the server.
    bool small_window = false;
    // Asks for SubscribeResponse.batch; Messages() holds what a batch
    // carried, one by one, and BatchSizes() how many each batch held.
    bool batch = false;
  };

  RawStream(int port, Options options)
      : stub_(v1::EntitySync::NewStub(
            options.small_window ? SmallWindowChannel(port) : Channel(port))) {
    if (!options.authorization.empty()) {
      context_.AddMetadata("authorization", options.authorization);
    }
    if (options.batch) context_.AddMetadata("entitysync-batch", "1");
    context_.set_deadline(absl::ToChronoTime(absl::Now() + options.deadline));
    stream_ = stub_->Subscribe(&context_);
    if (options.read) StartReading();
  }
  explicit RawStream(int port) : RawStream(port, Options{}) {}

  ~RawStream() {
    context_.TryCancel();
    if (reader_.joinable()) reader_.join();
  }

  void StartReading() {
    reader_ = std::thread([this] {
      v1::SubscribeResponse response;
      while (stream_->Read(&response)) {
        absl::MutexLock lock(&mu_);
        if (!response.has_batch()) {
          messages_.push_back(response);
          continue;
        }
        batch_sizes_.push_back(response.batch().responses_size());
        for (const v1::SubscribeResponse& m : response.batch().responses()) {
          if (m.has_batch()) ++nested_batches_;
          messages_.push_back(m);
        }
      }
      grpc::Status status = stream_->Finish();
      absl::MutexLock lock(&mu_);
      status_ = status;
    });
  }

  bool Send(const v1::SubscribeRequest& request) {
    absl::MutexLock lock(&write_mu_);
    return stream_->Write(request);
  }

  uint64_t Subscribe(const std::string& entity, const std::string& id,
                     uint64_t known_version = 0) {
    v1::SubscribeRequest request;
    request.set_request_id(++next_request_id_);
    request.mutable_subscribe()->mutable_key()->set_entity(entity);
    request.mutable_subscribe()->mutable_key()->set_id(id);
    request.mutable_subscribe()->set_known_version(known_version);
    Send(request);
    return request.request_id();
  }
  uint64_t Unsubscribe(const std::string& entity, const std::string& id) {
    v1::SubscribeRequest request;
    request.set_request_id(++next_request_id_);
    request.mutable_unsubscribe()->mutable_key()->set_entity(entity);
    request.mutable_unsubscribe()->mutable_key()->set_id(id);
    Send(request);
    return request.request_id();
  }

  std::vector<v1::SubscribeResponse> Messages() const {
    absl::MutexLock lock(&mu_);
    return messages_;
  }
  std::optional<grpc::Status> status() const {
    absl::MutexLock lock(&mu_);
    return status_;
  }
  std::vector<int> BatchSizes() const {
    absl::MutexLock lock(&mu_);
    return batch_sizes_;
  }
  int nested_batches() const {
    absl::MutexLock lock(&mu_);
    return nested_batches_;
  }

  // Waits for a message that matches; nullopt on timeout.
  std::optional<v1::SubscribeResponse> Await(
      const std::function<bool(const v1::SubscribeResponse&)>& match,
      absl::Duration timeout = absl::Seconds(10)) const {
    std::optional<v1::SubscribeResponse> found;
    WaitFor(
        [&] {
          for (const auto& m : Messages()) {
            if (match(m)) {
              found = m;
              return true;
            }
          }
          return false;
        },
        timeout);
    return found;
  }
  std::optional<v1::SubscribeResponse> AwaitSubscribed(
      uint64_t request_id) const {
    return Await([&](const v1::SubscribeResponse& m) {
      return m.has_subscribed() && m.subscribed().request_id() == request_id;
    });
  }
  std::optional<v1::SubscribeResponse> AwaitError(uint64_t request_id) const {
    return Await([&](const v1::SubscribeResponse& m) {
      return m.has_error() && m.error().request_id() == request_id;
    });
  }
  std::optional<v1::Update> AwaitUpdate(
      const std::string& id, uint64_t min_version = 0,
      absl::Duration timeout = absl::Seconds(10)) const {
    auto m = Await(
        [&](const v1::SubscribeResponse& m) {
          return m.has_update() && m.update().key().id() == id &&
                 m.update().version() >= min_version;
        },
        timeout);
    if (!m) return std::nullopt;
    return m->update();
  }
  std::vector<v1::Update> Updates(const std::string& id) const {
    std::vector<v1::Update> out;
    for (const auto& m : Messages()) {
      if (m.has_update() && m.update().key().id() == id)
        out.push_back(m.update());
    }
    return out;
  }

 private:
  std::unique_ptr<v1::EntitySync::Stub> stub_;
  grpc::ClientContext context_;
  std::unique_ptr<
      grpc::ClientReaderWriter<v1::SubscribeRequest, v1::SubscribeResponse>>
      stream_;
  std::thread reader_;
  absl::Mutex write_mu_;
  uint64_t next_request_id_ = 0;
  mutable absl::Mutex mu_;
  std::vector<v1::SubscribeResponse> messages_;
  std::vector<int> batch_sizes_;
  int nested_batches_ = 0;
  std::optional<grpc::Status> status_;
};

inline grpc::Status Notify(int internal_port,
                           const std::vector<std::string>& ids,
                           const std::string& entity = "items") {
  auto stub = v1::Notifier::NewStub(Channel(internal_port));
  v1::NotifyRequest request;
  for (const auto& id : ids) {
    v1::Change* change = request.add_changes();
    change->mutable_key()->set_entity(entity);
    change->mutable_key()->set_id(id);
  }
  v1::NotifyResponse response;
  grpc::ClientContext context;
  return stub->Notify(&context, request, &response);
}

// The real client library subscribed to one key, recording every update its
// callback sees (fast reconnects for tests).
class RecordingClient {
 public:
  RecordingClient(std::vector<int> ports, const client::EntityKey& key) {
    client::SubscriberOptions options;
    for (int port : ports)
      options.targets.push_back(absl::StrCat("127.0.0.1:", port));
    options.backoff_initial = absl::Milliseconds(20);
    options.backoff_max = absl::Milliseconds(200);
    auto subscriber = client::Subscriber::Create(options);
    EXPECT_TRUE(subscriber.ok()) << subscriber.status();
    subscriber_ = *std::move(subscriber);
    EXPECT_TRUE(subscriber_
                    ->Subscribe(key,
                                [this](const v1::Update& u) {
                                  absl::MutexLock lock(&mu_);
                                  seen_.push_back(u);
                                })
                    .ok());
  }
  std::vector<v1::Update> seen() const {
    absl::MutexLock lock(&mu_);
    return seen_;
  }
  // The first row of the newest update, "" before any.
  std::string last_row() const {
    absl::MutexLock lock(&mu_);
    return seen_.empty() || seen_.back().rows_size() == 0
               ? ""
               : seen_.back().rows(0).data();
  }
  bool AwaitRowContaining(const std::string& text,
                          absl::Duration timeout = absl::Seconds(20)) const {
    return WaitFor([&] { return absl::StrContains(last_row(), text); },
                   timeout);
  }

 private:
  mutable absl::Mutex mu_;
  std::vector<v1::Update> seen_;
  std::unique_ptr<client::Subscriber> subscriber_;
};

// grpc.health.v1.Health/Check for `service` ("" is the whole server),
// spoken on the wire (the health proto is not installed): returns 1 SERVING,
// 2 NOT_SERVING, or -1 when the call fails.
inline int HealthStatus(int port, const std::string& service = "") {
  grpc::GenericStub stub(Channel(port));
  grpc::ClientContext context;
  context.set_deadline(absl::ToChronoTime(absl::Now() + absl::Seconds(5)));
  grpc::CompletionQueue cq;
  // HealthCheckRequest{service}: field 1, length-delimited (short names).
  std::string encoded;
  if (!service.empty()) {
    encoded =
        std::string("\x0a", 1) + static_cast<char>(service.size()) + service;
  }
  grpc::Slice slice(encoded);
  grpc::ByteBuffer request(&slice, 1);
  auto call = stub.PrepareUnaryCall(&context, "/grpc.health.v1.Health/Check",
                                    request, &cq);
  call->StartCall();
  grpc::ByteBuffer reply;
  grpc::Status status;
  call->Finish(&reply, &status, reinterpret_cast<void*>(1));
  void* tag;
  bool ok;
  cq.Next(&tag, &ok);
  cq.Shutdown();
  while (cq.Next(&tag, &ok)) {
  }
  if (!status.ok()) return -1;
  std::vector<grpc::Slice> slices;
  if (!reply.Dump(&slices).ok()) return -1;
  std::string bytes;
  for (const auto& slice : slices) {
    bytes.append(reinterpret_cast<const char*>(slice.begin()), slice.size());
  }
  // HealthCheckResponse{status = 1}: field 1, varint.
  if (bytes.size() == 2 && bytes[0] == 0x08) return bytes[1];
  return bytes.empty() ? 0 : -1;
}

// Asks grpc.reflection.v1alpha.ServerReflection to list the services, on the
// wire: returns the call's status code (OK when reflection is served).
inline grpc::StatusCode ReflectionStatus(int port) {
  grpc::GenericStub stub(Channel(port));
  grpc::ClientContext context;
  context.set_deadline(absl::ToChronoTime(absl::Now() + absl::Seconds(5)));
  grpc::CompletionQueue cq;
  auto call = stub.PrepareCall(
      &context,
      "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo", &cq);
  void* tag;
  bool ok;
  const auto step = [&] { cq.Next(&tag, &ok); };
  call->StartCall(reinterpret_cast<void*>(1));
  step();
  // ServerReflectionRequest{list_services: ""}: field 7, length-delimited.
  grpc::Slice slice(std::string("\x3a\x00", 2));
  grpc::ByteBuffer request(&slice, 1);
  call->Write(request, reinterpret_cast<void*>(2));
  step();
  call->WritesDone(reinterpret_cast<void*>(3));
  step();
  grpc::ByteBuffer reply;
  do {
    call->Read(&reply, reinterpret_cast<void*>(4));
    step();
  } while (ok);
  grpc::Status status;
  call->Finish(&status, reinterpret_cast<void*>(5));
  step();
  cq.Shutdown();
  while (cq.Next(&tag, &ok)) {
  }
  return status.error_code();
}

}  // namespace entitysync::testing

#endif  // ENTITYSYNC_TESTS_E2E_E2E_HARNESS_H_
