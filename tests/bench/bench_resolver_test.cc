#include "bench/bench_resolver.h"

#include <memory>

#include "absl/time/clock.h"
#include "bench/key_space.h"
#include "bench/row_stamp.h"
#include "bench/version_table.h"
#include "entitysync/v1/resolver.grpc.pb.h"
#include "grpcpp/client_context.h"
#include "grpcpp/server.h"
#include "grpcpp/server_builder.h"
#include "gtest/gtest.h"

namespace entitysync {
namespace bench {
namespace {

class BenchResolverTest : public testing::Test {
 protected:
  void Start(BenchResolverOptions options) {
    resolver_ = std::make_unique<BenchResolver>(&keys_, &table_, options);
    grpc::ServerBuilder builder;
    builder.RegisterService(resolver_.get());
    server_ = builder.BuildAndStart();
    stub_ = v1::Resolver::NewStub(server_->InProcessChannel({}));
  }

  v1::ResolveResponse Resolve(const std::vector<std::string>& ids,
                              v1::ResolveRequest::Reason reason) {
    v1::ResolveRequest request;
    request.set_reason(reason);
    for (const std::string& id : ids) {
      v1::EntityKey* key = request.add_keys();
      key->set_entity("bench");
      key->set_id(id);
    }
    grpc::ClientContext context;
    v1::ResolveResponse response;
    EXPECT_TRUE(stub_->Resolve(&context, request, &response).ok());
    return response;
  }

  static RowStamp StampOf(const v1::ResolvedKey& result) {
    return DecodeRowStamp(
        reinterpret_cast<const unsigned char*>(result.rows(0).data().data()));
  }

  KeySpace keys_ = KeySpace::Numbered(10);
  VersionTable table_{10};
  std::unique_ptr<BenchResolver> resolver_;
  std::unique_ptr<grpc::Server> server_;
  std::unique_ptr<v1::Resolver::Stub> stub_;
};

TEST_F(BenchResolverTest, AnswersEveryKeyWithItsVersionAndNotifyTime) {
  BenchResolverOptions options;
  options.row_bytes = 100;
  Start(options);
  table_.Bump(std::vector<uint64_t>{3, 3}, 1234);

  const v1::ResolveResponse response =
      Resolve({"3", "4", "not-a-key"}, v1::ResolveRequest::CHANGE);
  ASSERT_EQ(response.results_size(), 3);
  for (const v1::ResolvedKey& result : response.results()) {
    EXPECT_EQ(result.status(), v1::ResolvedKey::FOUND);
    EXPECT_EQ(result.key().entity(), "bench");
    ASSERT_EQ(result.rows_size(), 1);
    EXPECT_EQ(result.rows(0).data().size(), 100u);
    EXPECT_EQ(result.rows(0).content_type(), "application/octet-stream");
  }
  EXPECT_EQ(response.results(0).key().id(), "3");
  EXPECT_EQ(response.results(0).version(), 3u);
  EXPECT_EQ(StampOf(response.results(0)).version, 3u);
  EXPECT_EQ(StampOf(response.results(0)).notify_time_ns, 1234);
  // Never changed, or outside the key space: version 1, time 0.
  for (int i : {1, 2}) {
    EXPECT_EQ(response.results(i).version(), 1u);
    EXPECT_EQ(StampOf(response.results(i)).version, 1u);
    EXPECT_EQ(StampOf(response.results(i)).notify_time_ns, 0);
  }
}

TEST_F(BenchResolverTest, CountsCallsKeysPeersAndReasons) {
  Start({});
  Resolve({"1", "2"}, v1::ResolveRequest::SUBSCRIBE);
  Resolve({"1"}, v1::ResolveRequest::CHANGE);
  Resolve({"5"}, v1::ResolveRequest::CHANGE);
  const std::string json = resolver_->StatsJson();
  EXPECT_NE(json.find("\"calls\":3,\"keys\":4,"), std::string::npos) << json;
  EXPECT_NE(json.find("\"calls_by_reason\":{\"SUBSCRIBE\":1,\"CHANGE\":2}"),
            std::string::npos)
      << json;
  // One in-process peer made all three calls.
  EXPECT_NE(json.find("\"calls_by_peer\":{\""), std::string::npos) << json;
  EXPECT_NE(json.find("\":3}"), std::string::npos) << json;
}

TEST_F(BenchResolverTest, DelaysAnswers) {
  BenchResolverOptions options;
  options.delay = absl::Milliseconds(200);
  Start(options);
  const absl::Time start = absl::Now();
  const v1::ResolveResponse response =
      Resolve({"1"}, v1::ResolveRequest::CHANGE);
  EXPECT_GE(absl::Now() - start, absl::Milliseconds(190));
  EXPECT_EQ(response.results_size(), 1);
}

}  // namespace
}  // namespace bench
}  // namespace entitysync
