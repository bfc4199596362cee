// The items resolver served over a real gRPC server on 127.0.0.1:0 and
// called through the generated stub, as entitysync-server would call it.
#include "examples/items/items_resolver.h"

#include <grpcpp/grpcpp.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "entitysync/v1/resolver.grpc.pb.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace entitysync::examples {
namespace {

using ::entitysync::v1::ResolvedKey;
using ::entitysync::v1::ResolveRequest;
using ::entitysync::v1::ResolveResponse;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;

std::string TempDbPath() {
  const char* dir = std::getenv("TEST_TMPDIR");
  std::string path = absl::StrCat(
      dir != nullptr ? dir : "/tmp", "/resolver_",
      ::testing::UnitTest::GetInstance()->current_test_info()->name(), ".db");
  for (const char* suffix : {"", "-wal", "-shm"}) {
    std::remove((path + suffix).c_str());
  }
  return path;
}

// A store, the resolver service on a real server, and a stub to call it.
class ResolverHarness {
 public:
  explicit ResolverHarness(ItemsResolver::Options options = {}) {
    absl::StatusOr<std::unique_ptr<ItemsStore>> store =
        ItemsStore::Open(TempDbPath());
    EXPECT_TRUE(store.ok()) << store.status();
    if (!store.ok()) return;
    store_ = *std::move(store);
    resolver_ = std::make_unique<ItemsResolver>(store_.get(), options);
    grpc::ServerBuilder builder;
    int port = 0;
    builder.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(),
                             &port);
    builder.RegisterService(resolver_.get());
    server_ = builder.BuildAndStart();
    EXPECT_NE(server_, nullptr);
    EXPECT_NE(port, 0);
    stub_ = entitysync::v1::Resolver::NewStub(grpc::CreateChannel(
        absl::StrCat("127.0.0.1:", port), grpc::InsecureChannelCredentials()));
  }

  ~ResolverHarness() {
    if (server_ != nullptr) server_->Shutdown();
  }

  bool ok() const { return server_ != nullptr; }
  ItemsStore& store() { return *store_; }
  ItemsResolver& resolver() { return *resolver_; }

  uint64_t Set(ItemChange change) {
    absl::StatusOr<uint64_t> version = store_->Upsert(change);
    EXPECT_TRUE(version.ok()) << version.status();
    return version.ok() ? *version : 0;
  }

  grpc::Status Call(
      const std::vector<std::pair<std::string, std::string>>& keys,
      const std::string& credentials, ResolveRequest::Reason reason,
      ResolveResponse* response) {
    ResolveRequest request;
    for (const auto& [entity, id] : keys) {
      entitysync::v1::EntityKey* key = request.add_keys();
      key->set_entity(entity);
      key->set_id(id);
    }
    request.set_credentials(credentials);
    request.set_reason(reason);
    grpc::ClientContext context;
    context.set_deadline(std::chrono::system_clock::now() +
                         std::chrono::seconds(10));
    return stub_->Resolve(&context, request, response);
  }

  // Resolves one "items" key; fails the test if the call fails.
  ResolvedKey One(const std::string& id, const std::string& credentials,
                  ResolveRequest::Reason reason) {
    ResolveResponse response;
    grpc::Status status = Call({{"items", id}}, credentials, reason, &response);
    EXPECT_TRUE(status.ok()) << status.error_message();
    EXPECT_EQ(response.results_size(), 1);
    if (response.results_size() != 1) return ResolvedKey();
    EXPECT_EQ(response.results(0).key().entity(), "items");
    EXPECT_EQ(response.results(0).key().id(), id);
    return response.results(0);
  }

 private:
  std::unique_ptr<ItemsStore> store_;
  std::unique_ptr<ItemsResolver> resolver_;
  std::unique_ptr<grpc::Server> server_;
  std::unique_ptr<entitysync::v1::Resolver::Stub> stub_;
};

ItemChange Change(std::string id, std::string name,
                  std::vector<std::string> tags = {},
                  std::vector<std::string> acl = {}) {
  ItemChange change;
  change.id = std::move(id);
  change.name = std::move(name);
  change.price_cents = 100;
  change.tags = std::move(tags);
  change.acl = std::move(acl);
  return change;
}

std::vector<std::string> RowData(const ResolvedKey& result) {
  std::vector<std::string> data;
  for (const auto& row : result.rows()) {
    EXPECT_EQ(row.content_type(), "application/json");
    data.push_back(row.data());
  }
  return data;
}

TEST(ItemsResolverTest, FoundItemComesAsItemRowThenTagRowsInOrder) {
  ResolverHarness harness;
  ASSERT_TRUE(harness.ok());
  harness.Set(Change("other", "first write"));
  ItemChange cup = Change("100", "Cup \"large\"", {"zebra", "apple"});
  cup.price_cents = 450;
  uint64_t version = harness.Set(cup);

  ResolvedKey result = harness.One("100", "", ResolveRequest::SUBSCRIBE);
  EXPECT_EQ(result.status(), ResolvedKey::FOUND);
  EXPECT_EQ(result.version(), version);
  EXPECT_THAT(
      RowData(result),
      ElementsAre(absl::StrCat(R"({"id":"100","name":"Cup \"large\"",)",
                               R"("price_cents":450,"version":)", version, "}"),
                  R"({"tag":"zebra"})", R"({"tag":"apple"})"));
}

TEST(ItemsResolverTest, MissingAndDeletedItemsAreNotFound) {
  ResolverHarness harness;
  ASSERT_TRUE(harness.ok());
  ResolvedKey missing = harness.One("nope", "", ResolveRequest::SUBSCRIBE);
  EXPECT_EQ(missing.status(), ResolvedKey::NOT_FOUND);
  EXPECT_EQ(missing.version(), 0u);
  EXPECT_THAT(missing.rows(), IsEmpty());

  uint64_t created = harness.Set(Change("5", "five", {"t"}));
  absl::StatusOr<uint64_t> deleted = harness.store().Delete("5");
  ASSERT_TRUE(deleted.ok());
  ResolvedKey gone = harness.One("5", "", ResolveRequest::CHANGE);
  EXPECT_EQ(gone.status(), ResolvedKey::NOT_FOUND);
  // Above the last FOUND version, so entitysync orders the removal after it.
  EXPECT_EQ(gone.version(), *deleted);
  EXPECT_GT(gone.version(), created);
  EXPECT_THAT(gone.rows(), IsEmpty());
}

TEST(ItemsResolverTest, AccessListDeniesOnSubscribeAndReauthorizeOnly) {
  ResolverHarness harness;
  ASSERT_TRUE(harness.ok());
  harness.Set(Change("secret", "Secret", {"t"}, {"alice-key", "bob-key"}));

  for (ResolveRequest::Reason reason :
       {ResolveRequest::SUBSCRIBE, ResolveRequest::REAUTHORIZE}) {
    SCOPED_TRACE(ResolveRequest::Reason_Name(reason));
    ResolvedKey stranger = harness.One("secret", "eve-key", reason);
    EXPECT_EQ(stranger.status(), ResolvedKey::DENIED);
    EXPECT_THAT(stranger.rows(), IsEmpty());
    EXPECT_EQ(harness.One("secret", "", reason).status(), ResolvedKey::DENIED);
    // Exact match only: a prefix of an allowed credential is not allowed.
    EXPECT_EQ(harness.One("secret", "bob", reason).status(),
              ResolvedKey::DENIED);
    ResolvedKey bob = harness.One("secret", "bob-key", reason);
    EXPECT_EQ(bob.status(), ResolvedKey::FOUND);
    EXPECT_EQ(bob.rows_size(), 2);
  }

  // A shared entity's change is resolved for subscribers who were
  // authorized at subscribe time: no credentials, rows returned.
  ResolvedKey change = harness.One("secret", "", ResolveRequest::CHANGE);
  EXPECT_EQ(change.status(), ResolvedKey::FOUND);
  EXPECT_EQ(change.rows_size(), 2);
  // A per_credentials change carries the subscriber's credentials.
  EXPECT_EQ(harness.One("secret", "eve-key", ResolveRequest::CHANGE).status(),
            ResolvedKey::DENIED);
}

TEST(ItemsResolverTest, WildcardListsVisibleItemsAtTheLatestVersion) {
  ResolverHarness harness;
  ASSERT_TRUE(harness.ok());
  harness.Set(Change("b", "B", {"tags-not-in-wildcard"}));
  harness.Set(Change("a", "A"));
  harness.Set(Change("c", "C", {}, {"carol-key"}));
  harness.Set(Change("d", "D"));
  absl::StatusOr<uint64_t> deleted = harness.store().Delete("d");
  ASSERT_TRUE(deleted.ok());

  auto ids = [](const ResolvedKey& result) {
    std::vector<std::string> rows = RowData(result);
    std::vector<std::string> ids;
    for (const std::string& row : rows) ids.push_back(row.substr(0, 12));
    return ids;
  };
  ResolvedKey anonymous = harness.One("*", "", ResolveRequest::SUBSCRIBE);
  EXPECT_EQ(anonymous.status(), ResolvedKey::FOUND);
  // The delete was the last write: the snapshot version covers it.
  EXPECT_EQ(anonymous.version(), *deleted);
  EXPECT_THAT(ids(anonymous),
              ElementsAre(R"({"id":"a","n)", R"({"id":"b","n)"));

  ResolvedKey carol = harness.One("*", "carol-key", ResolveRequest::SUBSCRIBE);
  EXPECT_EQ(carol.status(), ResolvedKey::FOUND);
  EXPECT_THAT(ids(carol), ElementsAre(R"({"id":"a","n)", R"({"id":"b","n)",
                                      R"({"id":"c","n)"));

  // Any later write raises the wildcard's version.
  harness.Set(Change("a", "A2"));
  EXPECT_GT(harness.One("*", "", ResolveRequest::SUBSCRIBE).version(),
            anonymous.version());
}

TEST(ItemsResolverTest, BatchGetsOneResultPerKey) {
  ResolverHarness harness;
  ASSERT_TRUE(harness.ok());
  uint64_t v100 = harness.Set(Change("100", "x", {"t1", "t2"}));
  uint64_t v101 = harness.Set(Change("101", "y"));
  harness.Set(Change("hidden", "z", {}, {"k"}));

  ResolveResponse response;
  grpc::Status status = harness.Call({{"items", "101"},
                                      {"items", "missing"},
                                      {"items", "100"},
                                      {"items", "hidden"},
                                      {"items", "*"}},
                                     "", ResolveRequest::SUBSCRIBE, &response);
  ASSERT_TRUE(status.ok()) << status.error_message();
  ASSERT_EQ(response.results_size(), 5);
  std::map<std::string, ResolvedKey> by_id;
  for (const ResolvedKey& result : response.results()) {
    EXPECT_EQ(result.key().entity(), "items");
    by_id[result.key().id()] = result;
  }
  ASSERT_EQ(by_id.size(), 5u);
  EXPECT_EQ(by_id["101"].status(), ResolvedKey::FOUND);
  EXPECT_EQ(by_id["101"].version(), v101);
  EXPECT_EQ(by_id["101"].rows_size(), 1);
  EXPECT_EQ(by_id["100"].status(), ResolvedKey::FOUND);
  EXPECT_EQ(by_id["100"].version(), v100);
  EXPECT_EQ(by_id["100"].rows_size(), 3);
  EXPECT_EQ(by_id["missing"].status(), ResolvedKey::NOT_FOUND);
  EXPECT_EQ(by_id["hidden"].status(), ResolvedKey::DENIED);
  EXPECT_EQ(by_id["*"].status(), ResolvedKey::FOUND);
  EXPECT_EQ(by_id["*"].rows_size(), 2);

  EXPECT_EQ(harness.resolver().calls(), 1u);
  EXPECT_EQ(harness.resolver().keys_resolved(), 5u);
}

TEST(ItemsResolverTest, ForeignEntityOrEmptyIdFailsTheWholeCall) {
  ResolverHarness harness;
  ASSERT_TRUE(harness.ok());
  harness.Set(Change("100", "x"));

  ResolveResponse response;
  grpc::Status status = harness.Call({{"items", "100"}, {"orders", "1"}}, "",
                                     ResolveRequest::SUBSCRIBE, &response);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(status.error_message(), HasSubstr("keys[1]"));
  EXPECT_THAT(status.error_message(), HasSubstr("orders"));
  EXPECT_EQ(response.results_size(), 0);

  status = harness.Call({{"items", ""}}, "", ResolveRequest::CHANGE, &response);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);

  EXPECT_EQ(harness.resolver().calls(), 2u);
  EXPECT_EQ(harness.resolver().keys_resolved(), 0u);
}

TEST(ItemsResolverTest, DelayHoldsAnswersWithoutSerializingCalls) {
  constexpr absl::Duration kDelay = absl::Milliseconds(500);
  constexpr int kCalls = 4;
  ResolverHarness harness(ItemsResolver::Options{kDelay});
  ASSERT_TRUE(harness.ok());
  harness.Set(Change("1", "one"));

  absl::Time start = absl::Now();
  std::vector<std::thread> callers;
  std::vector<grpc::Status> statuses(kCalls);
  for (int i = 0; i < kCalls; ++i) {
    callers.emplace_back([&harness, &statuses, i] {
      ResolveResponse response;
      statuses[i] =
          harness.Call({{"items", "1"}}, "", ResolveRequest::CHANGE, &response);
    });
  }
  for (std::thread& caller : callers) caller.join();
  absl::Duration elapsed = absl::Now() - start;

  for (const grpc::Status& status : statuses) {
    EXPECT_TRUE(status.ok()) << status.error_message();
  }
  EXPECT_GE(elapsed, kDelay);
  // Serialized calls would take kCalls * kDelay.
  EXPECT_LT(elapsed, (kCalls - 1) * kDelay);
  EXPECT_EQ(harness.resolver().calls(), static_cast<uint64_t>(kCalls));
}

}  // namespace
}  // namespace entitysync::examples
