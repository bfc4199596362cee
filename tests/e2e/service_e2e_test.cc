// End to end on one replica: the real server, the real SQLite resolver over
// gRPC, raw gRPC streams and the real client library.
#include <algorithm>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/match.h"
#include "client/subscriber.h"
#include "entitysync/health/health.grpc.pb.h"
#include "grpcpp/generic/generic_stub.h"
#include "tests/e2e/e2e_harness.h"

namespace entitysync::testing {
namespace {

class ServiceTest : public ::testing::Test {
 protected:
  void SetUp() override { Start(ServerOptions{}); }

  // (Re)starts the server with `options` plus the items table and free ports.
  void Start(ServerOptions options) {
    server_.reset();
    if (options.config.entities_size() == 0 && !open_mode_) {
      options.config = ItemsConfig(backend_.target());
    }
    options.public_address = "127.0.0.1:0";
    options.internal_address = "127.0.0.1:0";
    server_ = StartServer(std::move(options));
    ASSERT_NE(server_, nullptr);
  }
  int pub() const { return server_->public_port(); }
  int internal() const { return server_->internal_port(); }

  bool open_mode_ = false;
  ItemsBackend backend_;
  std::unique_ptr<EntitySyncServer> server_;
};

bool RowContains(const v1::Update& u, int row, const std::string& text) {
  return u.rows_size() > row && absl::StrContains(u.rows(row).data(), text);
}

TEST_F(ServiceTest, SnapshotOnSubscribe) {
  const uint64_t v = backend_.Set("100", "Lamp");
  RawStream s(pub());
  const uint64_t rid = s.Subscribe("items", "100");
  ASSERT_TRUE(s.AwaitSubscribed(rid));
  auto update = s.AwaitUpdate("100");
  ASSERT_TRUE(update);
  EXPECT_EQ(update->version(), v);
  EXPECT_FALSE(update->removed());
  EXPECT_TRUE(RowContains(*update, 0, "\"name\":\"Lamp\""))
      << update->DebugString();
  EXPECT_EQ(update->rows(0).content_type(), "application/json");
  // `subscribed` comes before the snapshot.
  auto messages = s.Messages();
  ASSERT_GE(messages.size(), 2u);
  EXPECT_TRUE(messages[0].has_subscribed());
}

TEST_F(ServiceTest, MissingItemSnapshotIsRemovedThenCreationArrives) {
  RawStream s(pub());
  ASSERT_TRUE(s.AwaitSubscribed(s.Subscribe("items", "new")));
  auto first = s.AwaitUpdate("new");
  ASSERT_TRUE(first);
  EXPECT_TRUE(first->removed());
  const uint64_t v = backend_.Set("new", "Fresh");
  ASSERT_TRUE(Notify(internal(), {"new"}).ok());
  auto created = s.AwaitUpdate("new", v);
  ASSERT_TRUE(created);
  EXPECT_FALSE(created->removed());
  EXPECT_TRUE(RowContains(*created, 0, "Fresh"));
}

TEST_F(ServiceTest, UpdateAfterNotifyAndDeletion) {
  backend_.Set("100", "Lamp");
  RawStream a(pub()), b(pub());
  ASSERT_TRUE(a.AwaitSubscribed(a.Subscribe("items", "100")));
  ASSERT_TRUE(b.AwaitSubscribed(b.Subscribe("items", "100")));
  ASSERT_TRUE(a.AwaitUpdate("100"));
  ASSERT_TRUE(b.AwaitUpdate("100"));
  const uint64_t calls_before = backend_.calls();
  const uint64_t v2 = backend_.Set("100", "Desk lamp");
  ASSERT_TRUE(Notify(internal(), {"100"}).ok());
  for (RawStream* s : {&a, &b}) {
    auto update = s->AwaitUpdate("100", v2);
    ASSERT_TRUE(update);
    EXPECT_TRUE(RowContains(*update, 0, "Desk lamp"));
  }
  EXPECT_EQ(backend_.calls() - calls_before, 1u)
      << "one resolve for the change, however many subscribers";
  const uint64_t v3 = backend_.Delete("100");
  ASSERT_TRUE(Notify(internal(), {"100"}).ok());
  auto removed = a.AwaitUpdate("100", v3);
  ASSERT_TRUE(removed);
  EXPECT_TRUE(removed->removed());
  EXPECT_EQ(removed->rows_size(), 0);
}

TEST_F(ServiceTest, SeveralRowsInOrder) {
  backend_.Set("7", "Chair", {"wood", "oak", "brown"});
  RawStream s(pub());
  s.Subscribe("items", "7");
  auto update = s.AwaitUpdate("7");
  ASSERT_TRUE(update);
  ASSERT_EQ(update->rows_size(), 4);
  EXPECT_TRUE(RowContains(*update, 0, "Chair"));
  EXPECT_TRUE(RowContains(*update, 1, "wood"));
  EXPECT_TRUE(RowContains(*update, 2, "oak"));
  EXPECT_TRUE(RowContains(*update, 3, "brown"));
}

TEST_F(ServiceTest, UnsubscribeStopsUpdates) {
  backend_.Set("1", "one");
  backend_.Set("2", "two");
  RawStream s(pub());
  s.Subscribe("items", "1");
  s.Subscribe("items", "2");
  ASSERT_TRUE(s.AwaitUpdate("1"));
  ASSERT_TRUE(s.AwaitUpdate("2"));
  const uint64_t rid = s.Unsubscribe("items", "1");
  ASSERT_TRUE(s.Await([&](const v1::SubscribeResponse& m) {
    return m.has_unsubscribed() && m.unsubscribed().request_id() == rid;
  }));
  backend_.Set("1", "one changed");
  const uint64_t v2 = backend_.Set("2", "two changed");
  ASSERT_TRUE(Notify(internal(), {"1", "2"}).ok());
  // Key 2's update is the sentinel: key 1's would have come in the same batch.
  ASSERT_TRUE(s.AwaitUpdate("2", v2));
  absl::SleepFor(absl::Milliseconds(100));
  EXPECT_EQ(s.Updates("1").size(), 1u)
      << "only the snapshot before unsubscribing";
  // Unsubscribing what is not subscribed is a precise error.
  auto err = s.AwaitError(s.Unsubscribe("items", "1"));
  ASSERT_TRUE(err);
  EXPECT_EQ(err->error().code(), grpc::StatusCode::NOT_FOUND);
}

TEST_F(ServiceTest, KnownVersionSkipsTheSnapshot) {
  const uint64_t v = backend_.Set("1", "one");
  backend_.Set("2", "two");
  RawStream s(pub());
  ASSERT_TRUE(
      s.AwaitSubscribed(s.Subscribe("items", "1", /*known_version=*/v)));
  s.Subscribe("items", "2");
  ASSERT_TRUE(s.AwaitUpdate("2"));
  EXPECT_TRUE(s.Updates("1").empty());
}

TEST_F(ServiceTest, AuthorizationFromMetadataOrAuthenticate) {
  backend_.Set("secret", "Vault", {}, {"alice-token"});
  {
    RawStream anonymous(pub());
    auto err = anonymous.AwaitError(anonymous.Subscribe("items", "secret"));
    ASSERT_TRUE(err);
    EXPECT_EQ(err->error().code(), grpc::StatusCode::PERMISSION_DENIED);
    EXPECT_EQ(err->error().key().id(), "secret");
    // The stream stays usable and no rows of the key were sent.
    backend_.Set("pub", "Public");
    ASSERT_TRUE(anonymous.AwaitSubscribed(anonymous.Subscribe("items", "pub")));
    ASSERT_TRUE(anonymous.AwaitUpdate("pub"));
    EXPECT_TRUE(anonymous.Updates("secret").empty());
  }
  {
    RawStream::Options options;
    options.authorization = "alice-token";
    RawStream alice(pub(), options);
    ASSERT_TRUE(alice.AwaitSubscribed(alice.Subscribe("items", "secret")));
    ASSERT_TRUE(alice.AwaitUpdate("secret"));
  }
  {
    RawStream late(pub());
    v1::SubscribeRequest auth;
    auth.set_request_id(99);
    auth.mutable_authenticate()->set_secret("alice-token");
    late.Send(auth);
    // Answered like every request, before what it enables.
    ASSERT_TRUE(late.Await([](const v1::SubscribeResponse& m) {
      return m.has_authenticated() && m.authenticated().request_id() == 99;
    }));
    ASSERT_TRUE(late.AwaitSubscribed(late.Subscribe("items", "secret")));
    ASSERT_TRUE(late.AwaitUpdate("secret"));
  }
}

// The credential limit holds on every path that takes credentials, with one
// message: metadata on Subscribe (it used to reach the resolver whole),
// `authenticate`, and Await (await_e2e_test).
TEST_F(ServiceTest, CredentialsOverTheLimitAreRefusedOnEveryStreamPath) {
  const std::string huge(5000, 'a');
  const uint64_t calls = backend_.calls();
  {
    RawStream::Options options;
    options.authorization = huge;
    RawStream s(pub(), options);
    s.Subscribe("items", "1");
    ASSERT_TRUE(WaitFor([&] { return s.status().has_value(); }));
    EXPECT_EQ(s.status()->error_code(), grpc::StatusCode::INVALID_ARGUMENT);
    EXPECT_EQ(s.status()->error_message(),
              "authorization is 5000 bytes; the limit is 4096");
    EXPECT_TRUE(s.Messages().empty());
  }
  {
    RawStream::Options options;
    options.authorization = std::string(4096, 'a');  // at the limit: fine
    RawStream s(pub(), options);
    ASSERT_TRUE(s.AwaitSubscribed(s.Subscribe("items", "1")));
  }
  RawStream s(pub());
  v1::SubscribeRequest auth;
  auth.set_request_id(7);
  auth.mutable_authenticate()->set_secret(huge);
  s.Send(auth);
  auto err = s.AwaitError(7);
  ASSERT_TRUE(err);
  EXPECT_EQ(err->error().code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(err->error().message(), "secret is 5000 bytes; the limit is 4096");
  ASSERT_TRUE(s.AwaitSubscribed(s.Subscribe("items", "1")));
  // Only the two accepted subscribes reached the resolver.
  EXPECT_LE(backend_.calls(), calls + 2);
}

TEST_F(ServiceTest, UnknownEntityIsRejectedOnStreamAndNotify) {
  RawStream s(pub());
  auto err = s.AwaitError(s.Subscribe("users", "1"));
  ASSERT_TRUE(err);
  EXPECT_EQ(err->error().code(), grpc::StatusCode::NOT_FOUND);
  EXPECT_TRUE(
      absl::StrContains(err->error().message(), "unknown entity 'users'"));
  grpc::Status status = Notify(internal(), {"1"}, "users");
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_TRUE(absl::StrContains(status.error_message(), "changes[0]"));
}

TEST_F(ServiceTest, BadSubscribeRequestsGetPreciseErrorsAndTheStreamStaysUp) {
  ServerOptions options;
  options.limits.max_subscriptions_per_stream = 3;
  options.limits.subscribe_rate_per_second = 1000;
  Start(std::move(options));
  backend_.Set("ok", "fine");
  RawStream s(pub());
  struct Case {
    std::string entity, id;
    const char* expect;
  } cases[] = {
      {"", "1", "entity is empty"},
      {"items", "", "id is empty"},
      {std::string(65, 'e'), "1", "the limit is 64"},
      {"items", std::string(1025, 'x'), "the limit is 1024"},
      {"it.ems", "1", "may contain only"},
  };
  for (const Case& c : cases) {
    auto err = s.AwaitError(s.Subscribe(c.entity, c.id));
    ASSERT_TRUE(err) << c.expect;
    EXPECT_EQ(err->error().code(), grpc::StatusCode::INVALID_ARGUMENT);
    EXPECT_TRUE(absl::StrContains(err->error().message(), c.expect))
        << err->error().message();
  }
  v1::SubscribeRequest empty;
  empty.set_request_id(500);
  s.Send(empty);
  auto no_kind = s.AwaitError(500);
  ASSERT_TRUE(no_kind);
  EXPECT_TRUE(absl::StrContains(no_kind->error().message(), "no kind"));

  v1::SubscribeRequest pass;
  pass.set_request_id(501);
  pass.mutable_passthrough()->set_data("hello");
  s.Send(pass);
  auto no_backend = s.AwaitError(501);
  ASSERT_TRUE(no_backend);
  EXPECT_EQ(no_backend->error().code(), grpc::StatusCode::FAILED_PRECONDITION);

  // Too many subscriptions on one stream.
  for (const char* id : {"a", "b", "ok"})
    ASSERT_TRUE(s.AwaitSubscribed(s.Subscribe("items", id)));
  auto too_many = s.AwaitError(s.Subscribe("items", "d"));
  ASSERT_TRUE(too_many);
  EXPECT_EQ(too_many->error().code(), grpc::StatusCode::RESOURCE_EXHAUSTED);
  EXPECT_TRUE(absl::StrContains(too_many->error().message(), "the limit is 3"));
  // The stream still works: a change to a subscribed key arrives.
  const uint64_t v = backend_.Set("ok", "still fine");
  ASSERT_TRUE(Notify(internal(), {"ok"}).ok());
  ASSERT_TRUE(s.AwaitUpdate("ok", v));
  EXPECT_FALSE(s.status().has_value()) << "stream still open";
}

// Sends raw bytes as one SubscribeRequest and returns the first answer.
std::optional<v1::SubscribeResponse> SendRaw(int port,
                                             const std::string& bytes) {
  grpc::GenericStub stub(Channel(port));
  grpc::ClientContext context;
  context.set_deadline(absl::ToChronoTime(absl::Now() + absl::Seconds(10)));
  grpc::CompletionQueue cq;
  auto call =
      stub.PrepareCall(&context, "/entitysync.v1.EntitySync/Subscribe", &cq);
  void* tag;
  bool ok;
  call->StartCall(reinterpret_cast<void*>(1));
  if (!cq.Next(&tag, &ok) || !ok) return std::nullopt;
  grpc::Slice slice(bytes);
  grpc::ByteBuffer request(&slice, 1);
  call->Write(request, reinterpret_cast<void*>(2));
  if (!cq.Next(&tag, &ok) || !ok) return std::nullopt;
  grpc::ByteBuffer reply;
  call->Read(&reply, reinterpret_cast<void*>(3));
  if (!cq.Next(&tag, &ok) || !ok) return std::nullopt;
  v1::SubscribeResponse response;
  if (!grpc::SerializationTraits<v1::SubscribeResponse>::Deserialize(&reply,
                                                                     &response)
           .ok()) {
    return std::nullopt;
  }
  context.TryCancel();
  grpc::Status status;
  call->Finish(&status, reinterpret_cast<void*>(4));
  cq.Next(&tag, &ok);
  cq.Shutdown();
  while (cq.Next(&tag, &ok)) {
  }
  return response;
}

TEST_F(ServiceTest, MalformedMessagesAndInvalidUtf8GetAnError) {
  // Not a protobuf: a truncated varint.
  auto garbage = SendRaw(pub(), std::string("\x08\xff\xff", 3));
  ASSERT_TRUE(garbage);
  ASSERT_TRUE(garbage->has_error());
  EXPECT_EQ(garbage->error().code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_TRUE(absl::StrContains(garbage->error().message(), "malformed"));
  // request_id 5, subscribe { key { entity "items" id "\xff" } }.
  const std::string bad_utf8(
      "\x08\x05\x12\x0c\x0a\x0a\x0a\x05items\x12\x01\xff", 16);
  auto utf8 = SendRaw(pub(), bad_utf8);
  ASSERT_TRUE(utf8);
  ASSERT_TRUE(utf8->has_error());
  EXPECT_EQ(utf8->error().code(), grpc::StatusCode::INVALID_ARGUMENT);
  // The server is unharmed.
  RawStream s(pub());
  ASSERT_TRUE(s.AwaitSubscribed(s.Subscribe("items", "x")));
}

TEST_F(ServiceTest, BadNotifyBatchesAreRejectedWhole) {
  ServerOptions options;
  options.limits.max_row_bytes = 100;
  Start(std::move(options));
  backend_.Set("good", "g");
  RawStream s(pub());
  ASSERT_TRUE(s.AwaitUpdate((s.Subscribe("items", "good"), "good")));
  auto stub = v1::Notifier::NewStub(Channel(internal()));
  auto call = [&](const v1::NotifyRequest& request) {
    v1::NotifyResponse response;
    grpc::ClientContext context;
    return stub->Notify(&context, request, &response);
  };
  struct Case {
    std::function<void(v1::Change*)> spoil;
    const char* expect;
  } cases[] = {
      {[](v1::Change* c) { c->mutable_key()->set_id(""); }, "id is empty"},
      {[](v1::Change* c) { c->mutable_key()->set_id("*"); }, "wildcard"},
      {[](v1::Change* c) { c->mutable_key()->set_entity(""); },
       "entity is empty"},
      {[](v1::Change* c) { c->mutable_key()->set_id(std::string(2000, 'x')); },
       "limit is 1024"},
      {[](v1::Change* c) {
         c->mutable_rows()->add_rows()->set_data(std::string(101, 'r'));
       },
       "101 bytes; the limit is 100"},
      {[](v1::Change* c) {
         c->mutable_rows()->set_removed(true);
         c->mutable_rows()->add_rows()->set_data("x");
       },
       "removed is set"},
  };
  backend_.Set("good", "changed but must not be announced");
  for (const Case& c : cases) {
    v1::NotifyRequest request;
    v1::Change* good = request.add_changes();
    good->mutable_key()->set_entity("items");
    good->mutable_key()->set_id("good");
    v1::Change* bad = request.add_changes();
    bad->mutable_key()->set_entity("items");
    bad->mutable_key()->set_id("bad");
    c.spoil(bad);
    grpc::Status status = call(request);
    EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT)
        << c.expect;
    EXPECT_TRUE(absl::StrContains(status.error_message(), "changes[1]"))
        << status.error_message();
    EXPECT_TRUE(absl::StrContains(status.error_message(), c.expect))
        << status.error_message();
  }
  absl::SleepFor(absl::Milliseconds(200));
  EXPECT_EQ(s.Updates("good").size(), 1u)
      << "nothing of a rejected batch is applied";
}

TEST_F(ServiceTest, OversizedResolvedRowsAreAnErrorNotACrash) {
  ServerOptions options;
  options.limits.max_row_bytes = 1000;
  Start(std::move(options));
  backend_.Set("big", std::string(5000, 'b'));
  RawStream s(pub());
  auto err = s.AwaitError(s.Subscribe("items", "big"));
  ASSERT_TRUE(err);
  EXPECT_EQ(err->error().code(), grpc::StatusCode::RESOURCE_EXHAUSTED);
  EXPECT_TRUE(absl::StrContains(err->error().message(), "the limit is 1000"));
  // A small item that grows past the limit turns stale, then recovers.
  backend_.Set("grows", "small");
  s.Subscribe("items", "grows");
  ASSERT_TRUE(s.AwaitUpdate("grows"));
  backend_.Set("grows", std::string(5000, 'g'));
  ASSERT_TRUE(Notify(internal(), {"grows"}).ok());
  auto stale =
      s.Await([](const v1::SubscribeResponse& m) { return m.has_stale(); });
  ASSERT_TRUE(stale);
  EXPECT_TRUE(absl::StrContains(stale->stale().reason(), "the limit is 1000"));
  const uint64_t v = backend_.Set("grows", "small again");
  ASSERT_TRUE(s.AwaitUpdate("grows", v))
      << "retries converge once the rows fit";
}

TEST_F(ServiceTest, WildcardReceivesEveryId) {
  backend_.Set("1", "one");
  RawStream s(pub());
  ASSERT_TRUE(s.AwaitSubscribed(s.Subscribe("items", "*")));
  auto snapshot = s.AwaitUpdate("*");
  ASSERT_TRUE(snapshot);
  EXPECT_TRUE(RowContains(*snapshot, 0, "one"));
  const uint64_t v = backend_.Set("2", "two");
  ASSERT_TRUE(Notify(internal(), {"2"}).ok());
  auto update = s.AwaitUpdate("2", v);
  ASSERT_TRUE(update);
  EXPECT_EQ(update->key().entity(), "items");
}

TEST_F(ServiceTest, ResolverDownGivesStaleThenRecovers) {
  // A resolver that is not there: subscribe fails with UNAVAILABLE.
  ServerOptions options;
  options.config = ItemsConfig("127.0.0.1:1");
  options.config.mutable_entities(0)->mutable_resolver()->set_timeout_ms(300);
  Start(std::move(options));
  RawStream s(pub());
  auto err = s.AwaitError(s.Subscribe("items", "1"));
  ASSERT_TRUE(err);
  EXPECT_EQ(err->error().code(), grpc::StatusCode::UNAVAILABLE);
}

TEST_F(ServiceTest, OpenModePushesInlineRows) {
  open_mode_ = true;
  Start(ServerOptions{});
  ASSERT_TRUE(server_->open_mode());
  RawStream s(pub());
  ASSERT_TRUE(s.AwaitSubscribed(s.Subscribe("anything", "1")));
  auto stub = v1::Notifier::NewStub(Channel(internal()));
  v1::NotifyRequest request;
  v1::Change* change = request.add_changes();
  change->mutable_key()->set_entity("anything");
  change->mutable_key()->set_id("1");
  change->set_version(3);
  change->mutable_rows()->add_rows()->set_data("{\"hello\":1}");
  v1::NotifyResponse response;
  grpc::ClientContext context;
  ASSERT_TRUE(stub->Notify(&context, request, &response).ok());
  EXPECT_EQ(response.accepted(), 1u);
  auto update = s.AwaitUpdate("1", 3);
  ASSERT_TRUE(update);
  EXPECT_EQ(update->rows(0).data(), "{\"hello\":1}");
}

TEST_F(ServiceTest, NotifyIsNotServedOnThePublicPort) {
  auto stub = v1::Notifier::NewStub(Channel(pub()));
  v1::NotifyRequest request;
  v1::Change* change = request.add_changes();
  change->mutable_key()->set_entity("items");
  change->mutable_key()->set_id("1");
  v1::NotifyResponse response;
  grpc::ClientContext context;
  EXPECT_EQ(stub->Notify(&context, request, &response).error_code(),
            grpc::StatusCode::UNIMPLEMENTED);
}

TEST_F(ServiceTest, StreamThatStopsReadingIsClosedWhileOthersKeepReceiving) {
  ServerOptions options;
  options.limits.max_outbound_queue_bytes = 256 << 10;
  options.limits.write_stall_timeout = absl::Milliseconds(300);
  Start(std::move(options));
  const int kItems = 20;
  // 20 keys of 8 KB: conflation keeps the stalled queue under its byte limit,
  // so it is the write-stall timeout that must catch this client.
  const std::string big(8000, 'z');
  for (int i = 0; i < kItems; ++i) backend_.Set(std::to_string(i), big + "-0");
  RawStream::Options stalled_options;
  stalled_options.read = false;
  stalled_options.small_window = true;
  RawStream stalled(pub(), stalled_options);
  RawStream healthy(pub());
  for (int i = 0; i < kItems; ++i) {
    stalled.Subscribe("items", std::to_string(i));
    healthy.Subscribe("items", std::to_string(i));
  }
  for (int i = 0; i < kItems; ++i)
    ASSERT_TRUE(healthy.AwaitUpdate(std::to_string(i)));
  std::vector<uint64_t> last(kItems);
  std::vector<std::string> ids;
  for (int i = 0; i < kItems; ++i) ids.push_back(std::to_string(i));
  for (int round = 1; round <= 30 && server_->stream_count() > 1; ++round) {
    for (int i = 0; i < kItems; ++i) {
      last[i] =
          backend_.Set(std::to_string(i), big + "-" + std::to_string(round));
    }
    ASSERT_TRUE(Notify(internal(), ids).ok());
    absl::SleepFor(absl::Milliseconds(50));
  }
  ASSERT_TRUE(WaitFor([&] { return server_->stream_count() == 1; }))
      << "the stalled stream was closed";
  for (int i = 0; i < kItems; ++i) {
    ASSERT_TRUE(healthy.AwaitUpdate(std::to_string(i), last[i]))
        << "the healthy stream converges on item " << i;
  }
  stalled.StartReading();
  ASSERT_TRUE(WaitFor([&] { return stalled.status().has_value(); }));
  const grpc::StatusCode code = stalled.status()->error_code();
  EXPECT_TRUE(code == grpc::StatusCode::RESOURCE_EXHAUSTED ||
              code == grpc::StatusCode::CANCELLED)
      << stalled.status()->error_message();
  // What operators see in /metrics.
  const ServerCounters& counters = server_->counters();
  EXPECT_EQ(counters.slow_consumer_disconnects.load(), 1u);
  EXPECT_GT(counters.updates_conflated.load(), 0u);
  EXPECT_GT(counters.updates_dropped.load(), 0u);
  EXPECT_GE(counters.updates_delivered.load(), 2u * kItems);
}

TEST_F(ServiceTest, ClientLibraryConvergesAfterServerRestart) {
  backend_.Set("100", "before");
  const int public_port = pub();
  RecordingClient client({public_port}, {"items", "100"});
  ASSERT_TRUE(client.AwaitRowContaining("before"));

  server_.reset();  // The replica goes away; changes keep happening.
  backend_.Set("100", "during");
  const uint64_t final_version = backend_.Set("100", "after");
  ServerOptions restarted;
  restarted.config = ItemsConfig(backend_.target());
  restarted.public_address = absl::StrCat("127.0.0.1:", public_port);
  restarted.internal_address = "127.0.0.1:0";
  server_ = StartServer(std::move(restarted));
  ASSERT_NE(server_, nullptr);
  ASSERT_TRUE(client.AwaitRowContaining("after"));
  const std::vector<v1::Update> seen = client.seen();
  EXPECT_EQ(seen.back().version(), final_version);
  for (size_t i = 1; i < seen.size(); ++i) {
    EXPECT_GT(seen[i].version(), seen[i - 1].version())
        << "versions only increase";
  }
}

// Echoes pass-through messages with the caller's credentials; "silent" gets
// no reply and "fail" an error.
class EchoBackend : public v1::PassthroughBackend::CallbackService {
 public:
  grpc::ServerUnaryReactor* Handle(grpc::CallbackServerContext* context,
                                   const v1::PassthroughRequest* request,
                                   v1::PassthroughResponse* response) override {
    auto* reactor = context->DefaultReactor();
    if (request->data() == "fail") {
      reactor->Finish(
          grpc::Status(grpc::StatusCode::ABORTED, "backend says no"));
      return reactor;
    }
    if (request->data() != "silent") {
      response->set_has_reply(true);
      response->set_data("echo:" + request->credentials() + ":" +
                         request->data());
    }
    reactor->Finish(grpc::Status::OK);
    return reactor;
  }
};

TEST_F(ServiceTest, PassthroughForwardsWithCredentialsAndReturnsReplies) {
  EchoBackend echo;
  int port = 0;
  grpc::ServerBuilder builder;
  builder.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(),
                           &port);
  builder.RegisterService(&echo);
  auto backend = builder.BuildAndStart();
  ServerOptions options;
  options.config = ItemsConfig(backend_.target());
  options.config.mutable_passthrough()->set_target(
      absl::StrCat("127.0.0.1:", port));
  options.config.mutable_passthrough()->set_timeout_ms(2000);
  Start(std::move(options));

  RawStream::Options stream_options;
  stream_options.authorization = "tok";
  RawStream s(pub(), stream_options);
  auto send = [&](uint64_t id, const std::string& data) {
    v1::SubscribeRequest request;
    request.set_request_id(id);
    request.mutable_passthrough()->set_data(data);
    s.Send(request);
  };
  send(1, "silent");
  send(2, "ping");
  auto reply = s.Await([](const v1::SubscribeResponse& m) {
    return m.has_passthrough_reply() && m.passthrough_reply().request_id() == 2;
  });
  ASSERT_TRUE(reply);
  EXPECT_EQ(reply->passthrough_reply().data(), "echo:tok:ping");
  send(3, "fail");
  auto err = s.AwaitError(3);
  ASSERT_TRUE(err);
  EXPECT_EQ(err->error().code(), grpc::StatusCode::ABORTED);
  EXPECT_TRUE(absl::StrContains(err->error().message(), "backend says no"));
  // "silent" is answered too, once, as handled without a reply.
  int silent_answers = 0;
  for (const auto& m : s.Messages()) {
    if (m.has_passthrough_reply() && m.passthrough_reply().request_id() == 1) {
      ++silent_answers;
      EXPECT_TRUE(m.passthrough_reply().no_reply());
      EXPECT_TRUE(m.passthrough_reply().data().empty());
    }
    EXPECT_FALSE(m.has_error() && m.error().request_id() == 1);
  }
  EXPECT_EQ(silent_answers, 1);
  EXPECT_FALSE(reply->passthrough_reply().no_reply());
  server_->Shutdown(absl::Seconds(1));
  backend->Shutdown();
}

TEST_F(ServiceTest, DuplicateSubscribeIsIdempotent) {
  backend_.Set("1", "one");
  RawStream s(pub());
  ASSERT_TRUE(s.AwaitSubscribed(s.Subscribe("items", "1")));
  ASSERT_TRUE(s.AwaitSubscribed(s.Subscribe("items", "1")));
  EXPECT_EQ(server_->hub().subscription_count(), 1u);
  const uint64_t v = backend_.Set("1", "two");
  ASSERT_TRUE(Notify(internal(), {"1"}).ok());
  ASSERT_TRUE(s.AwaitUpdate("1", v));
  absl::SleepFor(absl::Milliseconds(100));
  EXPECT_EQ(s.Updates("1").back().version(), v);
  int at_v = 0;
  for (const auto& u : s.Updates("1")) at_v += u.version() == v;
  EXPECT_EQ(at_v, 1)
      << "one update per change, not one per duplicate subscribe";
}

// A resolver for "items" whose subscribe-time calls wait at a gate, and
// whose rows and versions the test sets. Sync service: blocking is fine in a
// test backend.
class GatedResolver : public v1::Resolver::Service {
 public:
  grpc::Status Resolve(grpc::ServerContext*, const v1::ResolveRequest* request,
                       v1::ResolveResponse* response) override {
    if (request->reason() == v1::ResolveRequest::SUBSCRIBE) {
      absl::MutexLock lock(&mu_);
      ++waiting_;
      mu_.Await(absl::Condition(&open_));
      --waiting_;
    }
    absl::MutexLock lock(&mu_);
    for (const v1::EntityKey& key : request->keys()) {
      v1::ResolvedKey* r = response->add_results();
      *r->mutable_key() = key;
      r->set_version(version_);
      r->add_rows()->set_data(absl::StrCat(key.id(), ":", data_));
    }
    return grpc::Status::OK;
  }
  void Set(uint64_t version, const std::string& data) {
    absl::MutexLock lock(&mu_);
    version_ = version;
    data_ = data;
  }
  void Open() {
    absl::MutexLock lock(&mu_);
    open_ = true;
  }
  int waiting() {
    absl::MutexLock lock(&mu_);
    return waiting_;
  }

 private:
  absl::Mutex mu_;
  bool open_ = false;
  int waiting_ = 0;
  uint64_t version_ = 1;
  std::string data_ = "initial";
};

class GatedTest : public ::testing::Test {
 protected:
  void SetUp() override {
    grpc::ServerBuilder builder;
    builder.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(),
                             &port_);
    builder.RegisterService(&resolver_);
    backend_ = builder.BuildAndStart();
    ServerOptions options;
    options.config = ItemsConfig(absl::StrCat("127.0.0.1:", port_));
    options.public_address = "127.0.0.1:0";
    options.internal_address = "127.0.0.1:0";
    server_ = StartServer(std::move(options));
  }
  void TearDown() override {
    resolver_.Open();
    server_.reset();
    backend_->Shutdown();
  }
  GatedResolver resolver_;
  int port_ = 0;
  std::unique_ptr<grpc::Server> backend_;
  std::unique_ptr<EntitySyncServer> server_;
};

TEST_F(GatedTest, WildcardKeepsChangesMadeWhileItSubscribes) {
  RawStream s(server_->public_port());
  const uint64_t rid = s.Subscribe("items", "*");
  ASSERT_TRUE(WaitFor([&] { return resolver_.waiting() == 1; }));
  // The wildcard's snapshot is being resolved; item 7 changes meanwhile.
  resolver_.Set(2, "changed");
  ASSERT_TRUE(Notify(server_->internal_port(), {"7"}).ok());
  absl::SleepFor(absl::Milliseconds(200));  // The change is resolved first.
  resolver_.Open();
  ASSERT_TRUE(s.AwaitSubscribed(rid));
  auto update = s.AwaitUpdate("7", 2);
  ASSERT_TRUE(update) << "the change made while subscribing is not lost";
  EXPECT_EQ(update->rows(0).data(), "7:changed");
}

// DESIGN rule 1: every request id gets exactly one answer, whatever happens
// to its key while its snapshot is resolved. A subscribe replaced meanwhile
// (by an unsubscribe, or by another subscribe) gets a `superseded` ABORTED
// error naming the request that replaced it; it used to get nothing.
TEST_F(GatedTest, EveryRequestIsAnsweredOnceWhenItsKeyIsReplacedMidResolve) {
  RawStream s(server_->public_port());
  const uint64_t first = s.Subscribe("items", "k");
  ASSERT_TRUE(WaitFor([&] { return resolver_.waiting() >= 1; }));
  const uint64_t unsubscribe = s.Unsubscribe("items", "k");
  const uint64_t second = s.Subscribe("items", "k");
  const uint64_t third = s.Subscribe("items", "k");
  ASSERT_TRUE(s.Await([&](const v1::SubscribeResponse& m) {
    return m.has_error() && m.error().request_id() == second;
  }));
  resolver_.Open();
  ASSERT_TRUE(s.AwaitSubscribed(third));
  ASSERT_TRUE(s.AwaitUpdate("k"));
  absl::SleepFor(absl::Milliseconds(300));  // Late or doubled answers.

  absl::flat_hash_map<uint64_t, std::vector<v1::SubscribeResponse>> answers;
  int snapshots = 0;
  for (const v1::SubscribeResponse& m : s.Messages()) {
    if (m.has_subscribed()) answers[m.subscribed().request_id()].push_back(m);
    if (m.has_unsubscribed()) {
      answers[m.unsubscribed().request_id()].push_back(m);
    }
    if (m.has_error()) answers[m.error().request_id()].push_back(m);
    snapshots += m.has_update();
  }
  for (uint64_t id : {first, unsubscribe, second, third}) {
    ASSERT_EQ(answers[id].size(), 1u) << "request " << id;
  }
  for (auto [id, by] : {std::pair{first, unsubscribe}, {second, third}}) {
    const v1::Error& error = answers[id][0].error();
    EXPECT_EQ(error.code(), grpc::StatusCode::ABORTED);
    EXPECT_TRUE(error.superseded());
    EXPECT_EQ(error.key().id(), "k");
    EXPECT_TRUE(
        absl::StrContains(error.message(), absl::StrCat("request ", by)))
        << error.message();
  }
  EXPECT_TRUE(answers[unsubscribe][0].has_unsubscribed());
  EXPECT_TRUE(answers[third][0].has_subscribed());
  EXPECT_EQ(snapshots, 1);
  // Still subscribed through the last request.
  resolver_.Set(5, "later");
  ASSERT_TRUE(Notify(server_->internal_port(), {"k"}).ok());
  ASSERT_TRUE(s.AwaitUpdate("k", 5));
}

// 20 subscribes whose snapshots come back from one resolve: 40 answers wait
// for the stream at once. A client that asked for batches gets them in few
// messages, in the order they would have come alone; one that did not gets
// 40 messages and never a batch (written with gRPC's buffer hint but the
// last: without that flush they would wait in gRPC for good).
TEST_F(GatedTest, WaitingMessagesLeaveTogetherAsABatchToClientsThatAskForIt) {
  RawStream::Options ask;
  ask.batch = true;
  RawStream batched(server_->public_port(), ask);
  RawStream plain(server_->public_port());
  constexpr int kKeys = 20;
  for (RawStream* s : {&batched, &plain}) {
    for (int i = 0; i < kKeys; ++i) s->Subscribe("items", absl::StrCat(i));
  }
  ASSERT_TRUE(WaitFor([&] { return resolver_.waiting() >= 1; }));
  resolver_.Open();
  for (RawStream* s : {&batched, &plain}) {
    ASSERT_TRUE(s->AwaitSubscribed(kKeys));
    ASSERT_TRUE(s->AwaitUpdate(absl::StrCat(kKeys - 1)));
  }
  absl::SleepFor(absl::Milliseconds(100));  // Late or doubled messages.

  for (RawStream* s : {&batched, &plain}) {
    // Each request answered once, its snapshot right behind its answer.
    const std::vector<v1::SubscribeResponse> messages = s->Messages();
    ASSERT_EQ(messages.size(), 2u * kKeys);
    absl::flat_hash_map<std::string, int> seen;
    for (size_t i = 0; i < messages.size(); ++i) {
      if (!messages[i].has_subscribed()) continue;
      const std::string& id = messages[i].subscribed().key().id();
      EXPECT_EQ(++seen[id], 1) << id;
      ASSERT_LT(i + 1, messages.size());
      EXPECT_EQ(messages[i + 1].update().key().id(), id);
    }
    EXPECT_EQ(seen.size(), static_cast<size_t>(kKeys));
  }
  const std::vector<int> sizes = batched.BatchSizes();
  ASSERT_FALSE(sizes.empty()) << "40 waiting messages and not one batch";
  EXPECT_GT(*std::max_element(sizes.begin(), sizes.end()), 1);
  EXPECT_LT(sizes.size(), static_cast<size_t>(kKeys));
  EXPECT_EQ(batched.nested_batches(), 0);
  EXPECT_TRUE(plain.BatchSizes().empty());
  // Changes after the snapshots still arrive, batched or not.
  resolver_.Set(7, "later");
  ASSERT_TRUE(Notify(server_->internal_port(), {"3"}).ok());
  ASSERT_TRUE(batched.AwaitUpdate("3", 7));
  ASSERT_TRUE(plain.AwaitUpdate("3", 7));
}

TEST_F(GatedTest, UnversionedResolverWithNotifyVersionsKeepsUpdating) {
  resolver_.Open();
  resolver_.Set(/*version=*/0, "v0");  // The resolver does not version.
  RawStream s(server_->public_port());
  ASSERT_TRUE(s.AwaitSubscribed(s.Subscribe("items", "1")));
  ASSERT_TRUE(s.AwaitUpdate("1"));
  auto stub = v1::Notifier::NewStub(Channel(server_->internal_port()));
  for (uint64_t version : {6, 7}) {
    resolver_.Set(0, absl::StrCat("v", version));
    v1::NotifyRequest request;
    v1::Change* change = request.add_changes();
    change->mutable_key()->set_entity("items");
    change->mutable_key()->set_id("1");
    change->set_version(version);
    v1::NotifyResponse response;
    grpc::ClientContext context;
    ASSERT_TRUE(stub->Notify(&context, request, &response).ok());
    auto update = s.AwaitUpdate("1", version);
    ASSERT_TRUE(update) << "notice version " << version << " is delivered";
    EXPECT_EQ(update->rows(0).data(), absl::StrCat("1:v", version));
  }
}

TEST_F(ServiceTest, StartFailsCleanlyWhenThePortIsTaken) {
  ServerOptions options;
  options.config = ItemsConfig(backend_.target());
  options.public_address = "127.0.0.1:0";
  options.internal_address = absl::StrCat("127.0.0.1:", internal());
  auto second = EntitySyncServer::Start(std::move(options));
  ASSERT_FALSE(second.ok());
  EXPECT_TRUE(absl::StrContains(second.status().message(), "cannot listen"))
      << second.status();
}

TEST_F(ServiceTest, ErrorsEchoingLongMultibyteKeysStayValidUtf8) {
  RawStream s(pub());
  std::string id;
  for (int i = 0; i < 30; ++i) id += "\xe2\x82\xac";  // "€" x 30, 90 bytes.
  auto err = s.AwaitError(s.Unsubscribe("items", id));
  ASSERT_TRUE(err) << "the answer parses (valid UTF-8)";
  EXPECT_EQ(err->error().code(), grpc::StatusCode::NOT_FOUND);
  // The stream survives.
  ASSERT_TRUE(s.AwaitSubscribed(s.Subscribe("items", "ok")));
}

TEST_F(ServiceTest, DrainTellsClientsToMoveRefusesNewStreamsAndEndsEarly) {
  auto s = std::make_unique<RawStream>(pub());
  ASSERT_TRUE(s->AwaitSubscribed(s->Subscribe("items", "1")));
  const absl::Time started = absl::Now();
  std::thread drainer([&] { server_->Drain(absl::Seconds(20)); });
  auto goaway =
      s->Await([](const v1::SubscribeResponse& m) { return m.has_goaway(); });
  ASSERT_TRUE(goaway) << "every stream is told to move";
  EXPECT_EQ(goaway->goaway().reconnect_within_ms(), 2000u);
  EXPECT_EQ(HealthStatus(internal()), 2) << "NOT_SERVING while draining";
  EXPECT_EQ(HealthStatus(internal(), std::string(kLivenessService)), 1)
      << "a draining replica is alive: no restart";
  RawStream fresh(pub());
  fresh.Subscribe("items", "1");
  ASSERT_TRUE(WaitFor([&] { return fresh.status().has_value(); }));
  EXPECT_EQ(fresh.status()->error_code(), grpc::StatusCode::UNAVAILABLE);
  EXPECT_TRUE(absl::StrContains(fresh.status()->error_message(), "draining"));
  s.reset();  // The client moves away: the drain need not wait any longer.
  drainer.join();
  EXPECT_LT(absl::Now() - started, absl::Seconds(10));
}

TEST_F(ServiceTest, StreamsOlderThanTheMaximumConnectionAgeAreClosed) {
  ServerOptions options;
  options.max_connection_age = absl::Milliseconds(500);
  options.max_connection_age_grace = absl::Milliseconds(300);
  Start(std::move(options));
  RawStream s(pub());
  ASSERT_TRUE(s.AwaitSubscribed(s.Subscribe("items", "1")));
  ASSERT_TRUE(WaitFor([&] { return s.status().has_value(); }, absl::Seconds(5)))
      << "the aged connection is closed, so the client reconnects";
  EXPECT_EQ(s.status()->error_code(), grpc::StatusCode::UNAVAILABLE);
}

TEST_F(ServiceTest, AdminStatsReportsWhatTheReplicaDoes) {
  backend_.Set("1", "one");
  backend_.Set("2", "two");
  std::vector<std::unique_ptr<RawStream>> streams;
  for (int i = 0; i < 3; ++i) {
    streams.push_back(std::make_unique<RawStream>(pub()));
    ASSERT_TRUE(streams.back()->AwaitUpdate(
        (streams.back()->Subscribe("items", "1"), "1")));
  }
  streams.push_back(std::make_unique<RawStream>(pub()));
  ASSERT_TRUE(streams.back()->AwaitUpdate(
      (streams.back()->Subscribe("items", "2"), "2")));
  ASSERT_TRUE(streams.back()->AwaitUpdate(
      (streams.back()->Subscribe("items", "*"), "*")));

  auto stub = v1::Admin::NewStub(Channel(internal()));
  v1::StatsRequest request;
  request.set_top_keys(2);
  v1::StatsResponse stats;
  grpc::ClientContext context;
  ASSERT_TRUE(stub->Stats(&context, request, &stats).ok());
  EXPECT_FALSE(stats.replica().empty());
  EXPECT_EQ(stats.streams(), 4u);
  EXPECT_EQ(stats.subscriptions(), 5u);
  EXPECT_EQ(stats.keys(), 3u);
  EXPECT_EQ(stats.bus_state(), "connected");
  ASSERT_EQ(stats.top_keys_size(), 2);
  EXPECT_EQ(stats.top_keys(0).key().id(), "1");
  EXPECT_EQ(stats.top_keys(0).subscribers(), 3u);
  ASSERT_EQ(stats.entities_size(), 1);
  EXPECT_EQ(stats.entities(0).entity(), "items");
  EXPECT_EQ(stats.entities(0).subscriptions(), 5u);
  EXPECT_EQ(stats.entities(0).resolve_calls(), 5u) << "one per subscribe";
  EXPECT_GT(stats.entities(0).resolve_latency_max_ms(), 0.0);

  // Admin is never served on the public port.
  auto public_stub = v1::Admin::NewStub(Channel(pub()));
  grpc::ClientContext public_context;
  EXPECT_EQ(public_stub->Stats(&public_context, request, &stats).error_code(),
            grpc::StatusCode::UNIMPLEMENTED);
}

TEST_F(ServiceTest, HealthAndReflectionAreOnTheInternalPortOnly) {
  EXPECT_EQ(HealthStatus(internal()), 1);
  EXPECT_EQ(HealthStatus(internal(), std::string(kLivenessService)), 1);
  EXPECT_EQ(HealthStatus(internal(), "no.such.Service"), -1) << "NOT_FOUND";
  // Reflection is off unless asked for (--reflection).
  EXPECT_EQ(ReflectionStatus(internal()), grpc::StatusCode::UNIMPLEMENTED);
  // The public port serves Subscribe and nothing else.
  EXPECT_EQ(HealthStatus(pub()), -1);
  EXPECT_EQ(ReflectionStatus(pub()), grpc::StatusCode::UNIMPLEMENTED);

  ServerOptions options;
  options.reflection = true;
  Start(std::move(options));
  EXPECT_EQ(ReflectionStatus(internal()), grpc::StatusCode::OK);
  EXPECT_EQ(ReflectionStatus(pub()), grpc::StatusCode::UNIMPLEMENTED);
}

TEST_F(ServiceTest, HealthWatchSendsTheStatusAndEachChange) {
  using grpc::health::v1::HealthCheckResponse;
  auto stub = grpc::health::v1::Health::NewStub(Channel(internal()));
  const auto deadline =
      std::chrono::system_clock::now() + std::chrono::seconds(10);
  grpc::health::v1::HealthCheckRequest request;
  grpc::ClientContext unknown_context;
  unknown_context.set_deadline(deadline);
  request.set_service("no.such.Service");
  auto unknown = stub->Watch(&unknown_context, request);
  HealthCheckResponse response;
  ASSERT_TRUE(unknown->Read(&response));
  EXPECT_EQ(response.status(), HealthCheckResponse::SERVICE_UNKNOWN);

  grpc::ClientContext context;
  context.set_deadline(deadline);
  request.set_service("");
  auto reader = stub->Watch(&context, request);
  ASSERT_TRUE(reader->Read(&response));
  EXPECT_EQ(response.status(), HealthCheckResponse::SERVING);
  // Draining makes the replica unready: the watcher hears it at once.
  std::thread drain([&] { server_->Drain(absl::Seconds(1)); });
  ASSERT_TRUE(reader->Read(&response));
  EXPECT_EQ(response.status(), HealthCheckResponse::NOT_SERVING);
  drain.join();
  unknown_context.TryCancel();
}

TEST_F(ServiceTest, ShutdownClosesStreamsWithUnavailable) {
  RawStream s(pub());
  ASSERT_TRUE(s.AwaitSubscribed(s.Subscribe("items", "1")));
  server_->Shutdown(absl::Seconds(2));
  ASSERT_TRUE(WaitFor([&] { return s.status().has_value(); }));
  EXPECT_EQ(s.status()->error_code(), grpc::StatusCode::UNAVAILABLE);
}

}  // namespace
}  // namespace entitysync::testing
