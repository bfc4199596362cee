// Runs the real `items` binary: seed/set/delete against a fake
// entitysync Notifier served in the test, and `serve` end to end.
#include <fcntl.h>
#include <grpcpp/generic/generic_stub.h>
#include <grpcpp/grpcpp.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <memory>
#include <optional>
#include <sstream>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "entitysync/v1/entitysync.grpc.pb.h"
#include "entitysync/v1/resolver.grpc.pb.h"
#include "examples/items/items_store.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

extern char** environ;

namespace entitysync::examples {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
using ::testing::Not;

constexpr absl::Duration kChildTimeout = absl::Seconds(30);

std::string TestTmpDir() {
  const char* dir = std::getenv("TEST_TMPDIR");
  return dir != nullptr ? dir : "/tmp";
}

std::string UniquePath(absl::string_view suffix) {
  static int counter = 0;
  return absl::StrCat(
      TestTmpDir(), "/",
      ::testing::UnitTest::GetInstance()->current_test_info()->name(), "_",
      ++counter, suffix);
}

std::string ItemsBinary() {
  if (const char* srcdir = std::getenv("TEST_SRCDIR")) {
    std::string path = absl::StrCat(srcdir, "/entitysync/examples/items/items");
    if (access(path.c_str(), X_OK) == 0) return path;
  }
  return "examples/items/items";  // Relative to the runfiles working dir.
}

std::string ReadFile(const std::string& path) {
  std::ifstream in(path);
  std::stringstream contents;
  contents << in.rdbuf();
  return contents.str();
}

// One run of the `items` binary with stdout and stderr captured in files.
// The destructor kills it if it is still running.
class ItemsProcess {
 public:
  explicit ItemsProcess(const std::vector<std::string>& args)
      : out_path_(UniquePath(".out")), err_path_(UniquePath(".err")) {
    std::vector<std::string> argv_storage = {ItemsBinary()};
    argv_storage.insert(argv_storage.end(), args.begin(), args.end());
    std::vector<char*> argv;
    for (std::string& arg : argv_storage) argv.push_back(arg.data());
    argv.push_back(nullptr);

    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0);
    posix_spawn_file_actions_addopen(&actions, 1, out_path_.c_str(),
                                     O_WRONLY | O_CREAT | O_TRUNC, 0644);
    posix_spawn_file_actions_addopen(&actions, 2, err_path_.c_str(),
                                     O_WRONLY | O_CREAT | O_TRUNC, 0644);
    int rc =
        posix_spawn(&pid_, argv[0], &actions, nullptr, argv.data(), environ);
    posix_spawn_file_actions_destroy(&actions);
    EXPECT_EQ(rc, 0) << "cannot start " << argv[0];
    if (rc != 0) pid_ = -1;
  }

  ItemsProcess(const ItemsProcess&) = delete;
  ItemsProcess& operator=(const ItemsProcess&) = delete;

  ~ItemsProcess() {
    if (pid_ > 0) {
      kill(pid_, SIGKILL);
      waitpid(pid_, nullptr, 0);
    }
  }

  // The exit code, or nullopt (after killing it) when the process did not
  // exit normally within `timeout`.
  std::optional<int> Wait(absl::Duration timeout = kChildTimeout) {
    if (pid_ <= 0) return std::nullopt;
    absl::Time deadline = absl::Now() + timeout;
    while (absl::Now() < deadline) {
      int status = 0;
      pid_t done = waitpid(pid_, &status, WNOHANG);
      if (done == pid_) {
        pid_ = -1;
        if (WIFEXITED(status)) return WEXITSTATUS(status);
        return std::nullopt;
      }
      absl::SleepFor(absl::Milliseconds(10));
    }
    ADD_FAILURE() << "items did not exit within " << timeout;
    return std::nullopt;
  }

  void Signal(int signal) {
    if (pid_ > 0) kill(pid_, signal);
  }

  std::string out() const { return ReadFile(out_path_); }
  std::string err() const { return ReadFile(err_path_); }

 private:
  const std::string out_path_;
  const std::string err_path_;
  pid_t pid_ = -1;
};

struct RunResult {
  std::optional<int> exit_code;
  std::string out;
  std::string err;
};

RunResult RunItems(const std::vector<std::string>& args) {
  ItemsProcess process(args);
  RunResult result;
  result.exit_code = process.Wait();
  result.out = process.out();
  result.err = process.err();
  return result;
}

// Records every Notify and answers with a configurable status, like an
// entitysync replica's internal port would.
class FakeNotifier final : public entitysync::v1::Notifier::CallbackService {
 public:
  grpc::ServerUnaryReactor* Notify(
      grpc::CallbackServerContext* context,
      const entitysync::v1::NotifyRequest* request,
      entitysync::v1::NotifyResponse* response) override {
    grpc::Status status;
    {
      absl::MutexLock lock(&mu_);
      requests_.push_back(*request);
      status = status_;
    }
    if (status.ok()) response->set_accepted(request->changes_size());
    grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
    reactor->Finish(status);
    return reactor;
  }

  void FailWith(grpc::Status status) {
    absl::MutexLock lock(&mu_);
    status_ = std::move(status);
  }

  std::vector<entitysync::v1::NotifyRequest> requests() {
    absl::MutexLock lock(&mu_);
    return requests_;
  }

 private:
  absl::Mutex mu_;
  grpc::Status status_ ABSL_GUARDED_BY(mu_);
  std::vector<entitysync::v1::NotifyRequest> requests_ ABSL_GUARDED_BY(mu_);
};

class ItemsBinaryTest : public ::testing::Test {
 protected:
  void SetUp() override {
    db_path_ = UniquePath(".db");
    grpc::ServerBuilder builder;
    int port = 0;
    builder.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(),
                             &port);
    builder.RegisterService(&notifier_);
    server_ = builder.BuildAndStart();
    ASSERT_NE(server_, nullptr);
    ASSERT_NE(port, 0);
    notify_address_ = absl::StrCat("127.0.0.1:", port);
  }

  void TearDown() override {
    if (server_ != nullptr) server_->Shutdown();
  }

  std::string DbFlag() const { return absl::StrCat("--db=", db_path_); }
  std::string NotifyFlag() const {
    return absl::StrCat("--notify=", notify_address_);
  }

  // The item as the database has it now, read by the test itself.
  std::optional<Item> Stored(const std::string& id) {
    absl::StatusOr<std::unique_ptr<ItemsStore>> store =
        ItemsStore::Open(db_path_);
    EXPECT_TRUE(store.ok()) << store.status();
    if (!store.ok()) return std::nullopt;
    absl::StatusOr<std::optional<Item>> item = (*store)->Find(id);
    EXPECT_TRUE(item.ok()) << item.status();
    return item.ok() ? *item : std::nullopt;
  }

  std::string db_path_;
  std::string notify_address_;
  FakeNotifier notifier_;
  std::unique_ptr<grpc::Server> server_;
};

TEST_F(ItemsBinaryTest, UsageErrorsExitTwoWithUsageText) {
  const std::vector<std::vector<std::string>> bad = {
      {},
      {"frobnicate", DbFlag()},
      {"set", DbFlag()},
      {"set", "--id=1"},
      {"set", DbFlag(), "--id=1", "--colour=red"},
      {"set", DbFlag(), "--id=1", "--price_cents=cheap"},
      {"set", DbFlag(), "--id", "1"},
      {"delete", DbFlag(), "--id=1", "--id=2"},
      {"serve", DbFlag(), "--delay_ms=-1"},
  };
  for (const std::vector<std::string>& args : bad) {
    SCOPED_TRACE(absl::StrJoin(args, " "));
    RunResult result = RunItems(args);
    EXPECT_EQ(result.exit_code, 2);
    EXPECT_THAT(result.err, HasSubstr("usage: items"));
    EXPECT_THAT(result.out, IsEmpty());
  }
  RunResult help = RunItems({"help"});
  EXPECT_EQ(help.exit_code, 0);
  EXPECT_THAT(help.out, HasSubstr("usage: items"));
  EXPECT_TRUE(notifier_.requests().empty());
}

TEST_F(ItemsBinaryTest, SeedThenSetNotifiesTheKeyAndNewVersion) {
  RunResult seed = RunItems({"seed", DbFlag()});
  ASSERT_EQ(seed.exit_code, 0) << seed.err;
  EXPECT_THAT(seed.out, HasSubstr("seeded"));
  for (const char* id : {"100", "101", "102"}) {
    std::optional<Item> item = Stored(id);
    ASSERT_TRUE(item.has_value()) << id;
    EXPECT_FALSE(item->name.empty());
    EXPECT_FALSE(item->tags.empty());
  }
  // Seeding again leaves the data alone.
  uint64_t seeded_version = Stored("100")->version;
  ASSERT_EQ(RunItems({"seed", DbFlag()}).exit_code, 0);
  EXPECT_EQ(Stored("100")->version, seeded_version);

  RunResult set = RunItems({"set", DbFlag(), "--id=100", "--name=Big \"cup\"",
                            "--price_cents=525", "--tags=b,a", NotifyFlag()});
  ASSERT_EQ(set.exit_code, 0) << set.err;
  std::optional<Item> item = Stored("100");
  ASSERT_TRUE(item.has_value());
  EXPECT_EQ(item->name, "Big \"cup\"");
  EXPECT_EQ(item->price_cents, 525);
  EXPECT_THAT(item->tags, ElementsAre("b", "a"));
  EXPECT_GT(item->version, seeded_version);
  EXPECT_EQ(set.out,
            absl::StrCat("items/100 version ", item->version, "\nnotified\n"));

  std::vector<entitysync::v1::NotifyRequest> requests = notifier_.requests();
  ASSERT_EQ(requests.size(), 1u);
  EXPECT_FALSE(requests[0].local_only());
  ASSERT_EQ(requests[0].changes_size(), 1);
  const entitysync::v1::Change& change = requests[0].changes(0);
  EXPECT_EQ(change.key().entity(), "items");
  EXPECT_EQ(change.key().id(), "100");
  ASSERT_TRUE(change.has_version());
  EXPECT_EQ(change.version(), item->version);
  // No inline rows: entitysync resolves the key through the resolver.
  EXPECT_FALSE(change.has_rows());
}

TEST_F(ItemsBinaryTest, DeleteNotifiesTheTombstoneVersion) {
  ASSERT_EQ(RunItems({"set", DbFlag(), "--id=7", "--name=seven", "--notify="})
                .exit_code,
            0);
  uint64_t live_version = Stored("7")->version;

  RunResult deleted = RunItems({"delete", DbFlag(), "--id=7", NotifyFlag()});
  ASSERT_EQ(deleted.exit_code, 0) << deleted.err;
  std::optional<Item> tombstone = Stored("7");
  ASSERT_TRUE(tombstone.has_value());
  EXPECT_TRUE(tombstone->deleted);
  EXPECT_GT(tombstone->version, live_version);
  EXPECT_EQ(deleted.out, absl::StrCat("items/7 version ", tombstone->version,
                                      "\nnotified\n"));
  std::vector<entitysync::v1::NotifyRequest> requests = notifier_.requests();
  ASSERT_EQ(requests.size(), 1u);  // --notify= above sent nothing.
  ASSERT_EQ(requests[0].changes_size(), 1);
  EXPECT_EQ(requests[0].changes(0).key().id(), "7");
  EXPECT_EQ(requests[0].changes(0).version(), tombstone->version);

  // Deleting what is gone fails and notifies nobody.
  RunResult again = RunItems({"delete", DbFlag(), "--id=7", NotifyFlag()});
  EXPECT_EQ(again.exit_code, 1);
  EXPECT_THAT(again.err, HasSubstr("NOT_FOUND"));
  EXPECT_EQ(notifier_.requests().size(), 1u);
}

TEST_F(ItemsBinaryTest, FailedNotifyExitsOneAndKeepsTheWrite) {
  notifier_.FailWith(grpc::Status(grpc::StatusCode::UNAVAILABLE, "bus down"));
  RunResult set =
      RunItems({"set", DbFlag(), "--id=9", "--name=nine", NotifyFlag()});
  EXPECT_EQ(set.exit_code, 1);
  EXPECT_THAT(set.err, HasSubstr("bus down"));
  EXPECT_THAT(set.out, Not(HasSubstr("notified")));
  std::optional<Item> item = Stored("9");
  ASSERT_TRUE(item.has_value());
  EXPECT_THAT(set.out,
              HasSubstr(absl::StrCat("items/9 version ", item->version)));
  EXPECT_EQ(notifier_.requests().size(), 1u);
}

// Calls grpc.health.v1.Health/Check for the server as a whole, without
// generated health stubs: an empty request, and SERVING is field 1 = 1.
std::string HealthCheck(grpc::Channel* channel) {
  grpc::GenericStub stub(channel->shared_from_this());
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() +
                       std::chrono::seconds(10));
  grpc::Slice empty;
  grpc::ByteBuffer request(&empty, 1);
  grpc::ByteBuffer response;
  grpc::Status status;
  absl::Notification done;
  stub.UnaryCall(&context, "/grpc.health.v1.Health/Check", grpc::StubOptions(),
                 &request, &response, [&](grpc::Status s) {
                   status = std::move(s);
                   done.Notify();
                 });
  done.WaitForNotification();
  if (!status.ok()) return absl::StrCat("error: ", status.error_message());
  std::vector<grpc::Slice> slices;
  if (!response.Dump(&slices).ok()) return "error: dump";
  std::string bytes;
  for (const grpc::Slice& slice : slices) {
    bytes.append(reinterpret_cast<const char*>(slice.begin()), slice.size());
  }
  return bytes;
}

TEST_F(ItemsBinaryTest, ServeAnswersUntilSigterm) {
  ASSERT_EQ(RunItems({"seed", DbFlag()}).exit_code, 0);
  ItemsProcess serve({"serve", DbFlag(), "--listen=127.0.0.1:0"});

  const std::string kReady = "items resolver listening on ";
  std::string address;
  absl::Time deadline = absl::Now() + kChildTimeout;
  while (address.empty() && absl::Now() < deadline) {
    std::string err = serve.err();
    size_t at = err.find(kReady);
    size_t end = err.find('\n', at);
    if (at != std::string::npos && end != std::string::npos) {
      address = err.substr(at + kReady.size(), end - at - kReady.size());
    } else {
      absl::SleepFor(absl::Milliseconds(20));
    }
  }
  ASSERT_FALSE(address.empty()) << serve.err();
  ASSERT_TRUE(absl::StartsWith(address, "127.0.0.1:")) << address;
  EXPECT_NE(address, "127.0.0.1:0");

  std::shared_ptr<grpc::Channel> channel =
      grpc::CreateChannel(address, grpc::InsecureChannelCredentials());
  auto stub = entitysync::v1::Resolver::NewStub(channel);
  entitysync::v1::ResolveRequest request;
  request.set_reason(entitysync::v1::ResolveRequest::SUBSCRIBE);
  entitysync::v1::EntityKey* key = request.add_keys();
  key->set_entity("items");
  key->set_id("101");
  entitysync::v1::ResolveResponse response;
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() +
                       std::chrono::seconds(10));
  grpc::Status status = stub->Resolve(&context, request, &response);
  ASSERT_TRUE(status.ok()) << status.error_message();
  ASSERT_EQ(response.results_size(), 1);
  EXPECT_EQ(response.results(0).status(), entitysync::v1::ResolvedKey::FOUND);
  EXPECT_THAT(response.results(0).rows(0).data(),
              HasSubstr(R"("name":"Desk lamp")"));
  EXPECT_EQ(response.results(0).rows_size(), 4);  // The item and 3 tags.

  EXPECT_EQ(HealthCheck(channel.get()), std::string("\x08\x01", 2));

  serve.Signal(SIGTERM);
  EXPECT_EQ(serve.Wait(), 0) << serve.err();
}

}  // namespace
}  // namespace entitysync::examples
