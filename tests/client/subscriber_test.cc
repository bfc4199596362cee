#include "client/subscriber.h"

#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/client/fake_entity_sync_server.h"

namespace entitysync {
namespace client {
namespace {

using ::entitysync::testing::ErrorMessage;
using ::entitysync::testing::FakeEntitySyncServer;
using ::entitysync::testing::SubscribedMessage;
using ::entitysync::testing::UpdateMessage;
using ::testing::ElementsAre;
using ::testing::IsEmpty;

// Generous bound for things that normally take milliseconds.
constexpr absl::Duration kWait = absl::Seconds(5);

// A port on 127.0.0.1 with nothing listening (connections are refused).
int DeadPort() {
  const int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in address = {};
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t length = sizeof(address);
  if (bind(fd, reinterpret_cast<sockaddr*>(&address), sizeof(address)) != 0 ||
      getsockname(fd, reinterpret_cast<sockaddr*>(&address), &length) != 0) {
    close(fd);
    return 0;
  }
  close(fd);
  return ntohs(address.sin_port);
}

// Collects what callbacks see, as "callback:entity/id@version" strings.
class Recorder {
 public:
  Subscriber::UpdateCallback Callback(const std::string& name) {
    return [this, name](const v1::Update& update) {
      absl::MutexLock lock(&mu_);
      updates_.push_back(absl::StrCat(name, ":", update.key().entity(), "/",
                                      update.key().id(), "@",
                                      update.version()));
    };
  }

  std::function<void(const SubscriberEvent&)> EventCallback() {
    return [this](const SubscriberEvent& event) {
      absl::MutexLock lock(&mu_);
      events_.push_back(event);
    };
  }

  bool WaitForUpdates(size_t count, absl::Duration timeout = kWait) {
    absl::MutexLock lock(&mu_);
    auto enough = [this, count]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
      return updates_.size() >= count;
    };
    return mu_.AwaitWithTimeout(absl::Condition(&enough), timeout);
  }

  bool WaitForEvents(SubscriberEvent::Type type, size_t count,
                     absl::Duration timeout = kWait) {
    absl::MutexLock lock(&mu_);
    auto enough = [this, type, count]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
      return CountLocked(type) >= count;
    };
    return mu_.AwaitWithTimeout(absl::Condition(&enough), timeout);
  }

  std::vector<std::string> updates() {
    absl::MutexLock lock(&mu_);
    return updates_;
  }

  std::vector<SubscriberEvent> events(SubscriberEvent::Type type) {
    absl::MutexLock lock(&mu_);
    std::vector<SubscriberEvent> matching;
    for (const SubscriberEvent& event : events_) {
      if (event.type == type) matching.push_back(event);
    }
    return matching;
  }

 private:
  size_t CountLocked(SubscriberEvent::Type type) const
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    size_t count = 0;
    for (const SubscriberEvent& event : events_) count += event.type == type;
    return count;
  }

  absl::Mutex mu_;
  std::vector<std::string> updates_ ABSL_GUARDED_BY(mu_);
  std::vector<SubscriberEvent> events_ ABSL_GUARDED_BY(mu_);
};

SubscriberOptions FastOptions(std::vector<std::string> targets,
                              Recorder& recorder) {
  SubscriberOptions options;
  options.targets = std::move(targets);
  options.backoff_initial = absl::Milliseconds(10);
  options.backoff_max = absl::Milliseconds(100);
  options.on_event = recorder.EventCallback();
  return options;
}

std::unique_ptr<Subscriber> MustCreate(SubscriberOptions options) {
  absl::StatusOr<std::unique_ptr<Subscriber>> subscriber =
      Subscriber::Create(std::move(options));
  EXPECT_TRUE(subscriber.ok()) << subscriber.status();
  return subscriber.ok() ? *std::move(subscriber) : nullptr;
}

TEST(SubscriberTest, DeliversSnapshotsAndUpdatesToTheirOwnCallbacks) {
  FakeEntitySyncServer server;
  ASSERT_TRUE(server.ok());
  server.SetSnapshot("items", "1", 10);
  server.SetSnapshot("items", "2", 20);
  Recorder recorder;
  SubscriberOptions options = FastOptions({server.target()}, recorder);
  options.credentials = "secret-1";
  std::unique_ptr<Subscriber> subscriber = MustCreate(options);
  ASSERT_NE(subscriber, nullptr);

  ASSERT_TRUE(
      subscriber->Subscribe({"items", "1"}, recorder.Callback("a")).ok());
  ASSERT_TRUE(recorder.WaitForUpdates(1));
  ASSERT_TRUE(
      subscriber->Subscribe({"items", "2"}, recorder.Callback("b")).ok());
  ASSERT_TRUE(recorder.WaitForUpdates(2));
  server.Push(UpdateMessage("items", "2", 21));
  server.Push(UpdateMessage("items", "1", 11));
  server.Push(UpdateMessage("items", "3", 1));  // not subscribed: ignored
  ASSERT_TRUE(recorder.WaitForUpdates(4));

  EXPECT_THAT(recorder.updates(), ElementsAre("a:items/1@10", "b:items/2@20",
                                              "b:items/2@21", "a:items/1@11"));
  EXPECT_TRUE(subscriber->IsConnected());
  EXPECT_THAT(server.authorizations(), ElementsAre("secret-1"));
  const std::vector<v1::SubscribeRequest> subscribes = server.subscribes();
  ASSERT_EQ(subscribes.size(), 2u);
  EXPECT_EQ(subscribes[0].subscribe().known_version(), 0u);
  EXPECT_NE(subscribes[0].request_id(), subscribes[1].request_id());
  ASSERT_TRUE(recorder.WaitForEvents(SubscriberEvent::Type::kSubscribed, 2));
  EXPECT_EQ(recorder.events(SubscriberEvent::Type::kConnected).size(), 1u);
}

TEST(SubscriberTest, DropsVersionsNotNewerThanTheLastDelivered) {
  FakeEntitySyncServer server;
  ASSERT_TRUE(server.ok());
  Recorder recorder;
  std::unique_ptr<Subscriber> subscriber =
      MustCreate(FastOptions({server.target()}, recorder));
  ASSERT_TRUE(
      subscriber->Subscribe({"items", "1"}, recorder.Callback("a")).ok());
  ASSERT_TRUE(server.WaitForSubscribes(1, kWait));
  ASSERT_TRUE(recorder.WaitForEvents(SubscriberEvent::Type::kSubscribed, 1));

  server.Push(UpdateMessage("items", "1", 3));
  server.Push(UpdateMessage("items", "1", 2));
  server.Push(UpdateMessage("items", "1", 3));
  v1::SubscribeResponse removed_but_old = UpdateMessage("items", "1", 1);
  removed_but_old.mutable_update()->clear_rows();
  removed_but_old.mutable_update()->set_removed(true);
  server.Push(removed_but_old);
  server.Push(UpdateMessage("items", "1", 4));
  ASSERT_TRUE(recorder.WaitForUpdates(2));
  // Nothing else is pending once version 4 arrived: the stream is ordered.
  EXPECT_THAT(recorder.updates(), ElementsAre("a:items/1@3", "a:items/1@4"));
}

TEST(SubscriberTest, ResubscribesWithKnownVersionAfterServerRestart) {
  auto first = std::make_unique<FakeEntitySyncServer>();
  ASSERT_TRUE(first->ok());
  const int port = first->port();
  first->SetSnapshot("items", "1", 5);
  Recorder recorder;
  std::unique_ptr<Subscriber> subscriber =
      MustCreate(FastOptions({first->target()}, recorder));
  ASSERT_TRUE(
      subscriber->Subscribe({"items", "1"}, recorder.Callback("a")).ok());
  ASSERT_TRUE(
      subscriber->Subscribe({"items", "2"}, recorder.Callback("b")).ok());
  ASSERT_TRUE(recorder.WaitForUpdates(1));

  first->Shutdown();
  ASSERT_TRUE(recorder.WaitForEvents(SubscriberEvent::Type::kDisconnected, 1));
  FakeEntitySyncServer second(port);
  ASSERT_TRUE(second.ok()) << "port " << port << " could not be reused";
  second.SetSnapshot("items", "1", 5);  // unchanged: no snapshot expected
  ASSERT_TRUE(second.WaitForSubscribes(2, kWait));
  ASSERT_TRUE(subscriber->WaitForConnected(kWait));

  uint64_t known_1 = 99;
  uint64_t known_2 = 99;
  for (const v1::SubscribeRequest& request : second.subscribes()) {
    if (request.subscribe().key().id() == "1") {
      known_1 = request.subscribe().known_version();
    } else {
      known_2 = request.subscribe().known_version();
    }
  }
  EXPECT_EQ(known_1, 5u);
  EXPECT_EQ(known_2, 0u);  // nothing delivered for it yet

  second.Push(UpdateMessage("items", "1", 4));  // older than delivered
  second.Push(UpdateMessage("items", "1", 6));
  ASSERT_TRUE(recorder.WaitForUpdates(2));
  EXPECT_THAT(recorder.updates(), ElementsAre("a:items/1@5", "a:items/1@6"));
}

TEST(SubscriberTest, RotatesToTheNextTargetWhenOneIsDead) {
  const int dead_port = DeadPort();
  ASSERT_NE(dead_port, 0);
  FakeEntitySyncServer server;
  ASSERT_TRUE(server.ok());
  server.SetSnapshot("items", "1", 1);
  Recorder recorder;
  std::unique_ptr<Subscriber> subscriber = MustCreate(FastOptions(
      {absl::StrCat("127.0.0.1:", dead_port), server.target()}, recorder));
  ASSERT_TRUE(
      subscriber->Subscribe({"items", "1"}, recorder.Callback("a")).ok());

  ASSERT_TRUE(recorder.WaitForUpdates(1));
  EXPECT_THAT(recorder.updates(), ElementsAre("a:items/1@1"));
  const std::vector<SubscriberEvent> disconnects =
      recorder.events(SubscriberEvent::Type::kDisconnected);
  ASSERT_GE(disconnects.size(), 1u);
  EXPECT_EQ(disconnects[0].target, absl::StrCat("127.0.0.1:", dead_port));
  EXPECT_EQ(disconnects[0].status.code(), absl::StatusCode::kUnavailable);
  const std::vector<SubscriberEvent> connects =
      recorder.events(SubscriberEvent::Type::kConnected);
  ASSERT_EQ(connects.size(), 1u);
  EXPECT_EQ(connects[0].target, server.target());
}

TEST(SubscriberTest, AbandonsATargetThatAcceptsButNeverAnswers) {
  // Listening but never accepting: TCP connects, HTTP/2 never starts.
  const int black_hole = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in address = {};
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t length = sizeof(address);
  ASSERT_EQ(
      bind(black_hole, reinterpret_cast<sockaddr*>(&address), sizeof(address)),
      0);
  ASSERT_EQ(listen(black_hole, 16), 0);
  ASSERT_EQ(
      getsockname(black_hole, reinterpret_cast<sockaddr*>(&address), &length),
      0);
  FakeEntitySyncServer server;
  ASSERT_TRUE(server.ok());
  server.SetSnapshot("items", "1", 1);
  Recorder recorder;
  SubscriberOptions options = FastOptions(
      {absl::StrCat("127.0.0.1:", ntohs(address.sin_port)), server.target()},
      recorder);
  options.connect_timeout = absl::Milliseconds(200);
  std::unique_ptr<Subscriber> subscriber = MustCreate(options);
  ASSERT_TRUE(
      subscriber->Subscribe({"items", "1"}, recorder.Callback("a")).ok());

  ASSERT_TRUE(recorder.WaitForUpdates(1));
  const std::vector<SubscriberEvent> disconnects =
      recorder.events(SubscriberEvent::Type::kDisconnected);
  ASSERT_EQ(disconnects.size(), 1u);
  EXPECT_EQ(disconnects[0].status.code(), absl::StatusCode::kDeadlineExceeded);
  subscriber.reset();
  close(black_hole);
}

TEST(SubscriberTest, UnsubscribeStopsCallbacksEvenForUpdatesInFlight) {
  FakeEntitySyncServer server;
  ASSERT_TRUE(server.ok());
  server.SetSnapshot("items", "1", 1);
  Recorder recorder;
  std::unique_ptr<Subscriber> subscriber =
      MustCreate(FastOptions({server.target()}, recorder));
  ASSERT_TRUE(
      subscriber->Subscribe({"items", "1"}, recorder.Callback("a")).ok());
  ASSERT_TRUE(
      subscriber->Subscribe({"items", "2"}, recorder.Callback("b")).ok());
  ASSERT_TRUE(recorder.WaitForUpdates(1));
  ASSERT_TRUE(server.WaitForSubscribes(2, kWait));

  ASSERT_TRUE(subscriber->Unsubscribe({"items", "1"}).ok());
  // The server has not seen the unsubscribe yet when it sends these.
  server.Push(UpdateMessage("items", "1", 2));
  server.Push(UpdateMessage("items", "2", 1));
  ASSERT_TRUE(recorder.WaitForUpdates(2));
  EXPECT_THAT(recorder.updates(), ElementsAre("a:items/1@1", "b:items/2@1"));

  ASSERT_TRUE(server.WaitForRequests(3, kWait));
  const v1::SubscribeRequest last = server.requests().back();
  ASSERT_TRUE(last.has_unsubscribe());
  EXPECT_EQ(last.unsubscribe().key().id(), "1");
  EXPECT_EQ(subscriber->Unsubscribe({"items", "1"}).code(),
            absl::StatusCode::kNotFound);
}

TEST(SubscriberTest, CallbackMayUnsubscribeItsOwnKey) {
  FakeEntitySyncServer server;
  ASSERT_TRUE(server.ok());
  server.SetSnapshot("items", "1", 1);
  Recorder recorder;
  std::unique_ptr<Subscriber> subscriber =
      MustCreate(FastOptions({server.target()}, recorder));
  Subscriber::UpdateCallback record = recorder.Callback("a");
  Subscriber* raw = subscriber.get();
  ASSERT_TRUE(
      subscriber
          ->Subscribe({"items", "1"},
                      [record, raw](const v1::Update& update) {
                        record(update);
                        EXPECT_TRUE(raw->Unsubscribe({"items", "1"}).ok());
                      })
          .ok());
  ASSERT_TRUE(
      subscriber->Subscribe({"items", "2"}, recorder.Callback("b")).ok());
  ASSERT_TRUE(recorder.WaitForUpdates(1));
  ASSERT_TRUE(server.WaitForSubscribes(2, kWait));
  server.Push(UpdateMessage("items", "1", 2));
  server.Push(UpdateMessage("items", "2", 1));
  ASSERT_TRUE(recorder.WaitForUpdates(2));
  EXPECT_THAT(recorder.updates(), ElementsAre("a:items/1@1", "b:items/2@1"));
}

TEST(SubscriberTest, FinalErrorDropsTheKeyWhileUnavailableIsRetried) {
  FakeEntitySyncServer server;
  ASSERT_TRUE(server.ok());
  int flaky_attempts = 0;  // only touched by the server's handler
  server.set_handler([&flaky_attempts](const v1::SubscribeRequest& request) {
    std::vector<v1::SubscribeResponse> answer;
    if (!request.has_subscribe()) return answer;
    const v1::EntityKey& key = request.subscribe().key();
    if (key.id() == "denied") {
      answer.push_back(ErrorMessage(request.request_id(), key, 7));
    } else if (++flaky_attempts <= 2) {
      answer.push_back(ErrorMessage(request.request_id(), key, 14));
    } else {
      answer.push_back(SubscribedMessage(request.request_id(), key));
      answer.push_back(UpdateMessage(key.entity(), key.id(), 1));
    }
    return answer;
  });
  Recorder recorder;
  std::unique_ptr<Subscriber> subscriber =
      MustCreate(FastOptions({server.target()}, recorder));
  ASSERT_TRUE(
      subscriber->Subscribe({"items", "denied"}, recorder.Callback("d")).ok());
  ASSERT_TRUE(
      subscriber->Subscribe({"items", "flaky"}, recorder.Callback("f")).ok());

  ASSERT_TRUE(recorder.WaitForUpdates(1));
  EXPECT_THAT(recorder.updates(), ElementsAre("f:items/flaky@1"));
  // Retries of "denied" would have happened many times over by now.
  absl::SleepFor(absl::Milliseconds(200));
  int denied = 0;
  int flaky = 0;
  for (const v1::SubscribeRequest& request : server.subscribes()) {
    (request.subscribe().key().id() == "denied" ? denied : flaky)++;
  }
  EXPECT_EQ(denied, 1);
  EXPECT_EQ(flaky, 3);

  const std::vector<SubscriberEvent> errors =
      recorder.events(SubscriberEvent::Type::kError);
  ASSERT_EQ(errors.size(), 3u);
  int final_errors = 0;
  for (const SubscriberEvent& error : errors) {
    if (error.key.id == "denied") {
      EXPECT_TRUE(error.final);
      EXPECT_EQ(error.status.code(), absl::StatusCode::kPermissionDenied);
      ++final_errors;
    } else {
      EXPECT_TRUE(error.retrying);
      EXPECT_FALSE(error.final);
      EXPECT_EQ(error.status.code(), absl::StatusCode::kUnavailable);
    }
  }
  EXPECT_EQ(final_errors, 1);
  EXPECT_EQ(subscriber->Unsubscribe({"items", "denied"}).code(),
            absl::StatusCode::kNotFound);
  EXPECT_TRUE(subscriber->IsConnected());
}

// The server answers a subscribe that a later request replaced before its
// snapshot with a `superseded` error: the application asked for nothing
// wrong, so it hears nothing of it, and the later subscription works.
TEST(SubscriberTest, SupersededAnswersAreNotReportedAsErrors) {
  FakeEntitySyncServer server;
  ASSERT_TRUE(server.ok());
  uint64_t first_request = 0;  // only touched by the server's handler
  server.set_handler([&first_request](const v1::SubscribeRequest& request) {
    std::vector<v1::SubscribeResponse> answer;
    if (request.has_subscribe() && first_request == 0) {
      first_request = request.request_id();  // still resolving
    } else if (request.has_unsubscribe()) {
      v1::SubscribeResponse superseded =
          ErrorMessage(first_request, request.unsubscribe().key(), 10);
      superseded.mutable_error()->set_superseded(true);
      answer.push_back(superseded);
      v1::SubscribeResponse unsubscribed;
      unsubscribed.mutable_unsubscribed()->set_request_id(request.request_id());
      answer.push_back(unsubscribed);
    } else if (request.has_subscribe()) {
      answer.push_back(
          SubscribedMessage(request.request_id(), request.subscribe().key()));
      answer.push_back(UpdateMessage("items", "k", 1));
    }
    return answer;
  });
  Recorder recorder;
  std::unique_ptr<Subscriber> subscriber =
      MustCreate(FastOptions({server.target()}, recorder));
  ASSERT_TRUE(
      subscriber->Subscribe({"items", "k"}, recorder.Callback("a")).ok());
  ASSERT_TRUE(server.WaitForSubscribes(1, kWait));
  ASSERT_TRUE(subscriber->Unsubscribe({"items", "k"}).ok());
  ASSERT_TRUE(
      subscriber->Subscribe({"items", "k"}, recorder.Callback("b")).ok());
  ASSERT_TRUE(recorder.WaitForUpdates(1));
  EXPECT_THAT(recorder.updates(), ElementsAre("b:items/k@1"));
  ASSERT_TRUE(recorder.WaitForEvents(SubscriberEvent::Type::kSubscribed, 1));
  EXPECT_THAT(recorder.events(SubscriberEvent::Type::kError), IsEmpty());
}

TEST(SubscriberTest, WildcardDeliversEveryIdWithVersionsPerId) {
  FakeEntitySyncServer server;
  ASSERT_TRUE(server.ok());
  Recorder recorder;
  std::unique_ptr<Subscriber> subscriber =
      MustCreate(FastOptions({server.target()}, recorder));
  ASSERT_TRUE(
      subscriber->Subscribe({"items", "*"}, recorder.Callback("w")).ok());
  ASSERT_TRUE(
      subscriber->Subscribe({"items", "1"}, recorder.Callback("c")).ok());
  ASSERT_TRUE(recorder.WaitForEvents(SubscriberEvent::Type::kSubscribed, 2));

  server.Push(UpdateMessage("items", "1", 5));
  server.Push(UpdateMessage("items", "2", 1));  // lower, but another id
  server.Push(UpdateMessage("items", "1", 5));  // duplicate
  server.Push(UpdateMessage("other", "1", 9));  // another entity
  server.Push(UpdateMessage("items", "2", 2));
  ASSERT_TRUE(recorder.WaitForUpdates(4));
  EXPECT_THAT(recorder.updates(), ElementsAre("c:items/1@5", "w:items/1@5",
                                              "w:items/2@1", "w:items/2@2"));
}

TEST(SubscriberTest, GoAwayReconnectsAndResubscribes) {
  FakeEntitySyncServer server;
  ASSERT_TRUE(server.ok());
  server.SetSnapshot("items", "1", 7);
  Recorder recorder;
  std::unique_ptr<Subscriber> subscriber =
      MustCreate(FastOptions({server.target()}, recorder));
  ASSERT_TRUE(
      subscriber->Subscribe({"items", "1"}, recorder.Callback("a")).ok());
  ASSERT_TRUE(recorder.WaitForUpdates(1));

  v1::SubscribeResponse goaway;
  goaway.mutable_goaway()->set_reconnect_within_ms(50);
  server.Push(goaway);
  ASSERT_TRUE(server.WaitForStreamsStarted(2, kWait));
  ASSERT_TRUE(server.WaitForSubscribes(2, kWait));
  EXPECT_EQ(server.subscribes()[1].subscribe().known_version(), 7u);
  const std::vector<SubscriberEvent> goaways =
      recorder.events(SubscriberEvent::Type::kGoAway);
  ASSERT_EQ(goaways.size(), 1u);
  EXPECT_LE(goaways[0].delay, absl::Milliseconds(50));
  ASSERT_TRUE(recorder.WaitForEvents(SubscriberEvent::Type::kConnected, 2));
  EXPECT_THAT(recorder.updates(), ElementsAre("a:items/1@7"));
}

TEST(SubscriberTest, ReportsStaleKeys) {
  FakeEntitySyncServer server;
  ASSERT_TRUE(server.ok());
  Recorder recorder;
  std::unique_ptr<Subscriber> subscriber =
      MustCreate(FastOptions({server.target()}, recorder));
  ASSERT_TRUE(
      subscriber->Subscribe({"items", "1"}, recorder.Callback("a")).ok());
  ASSERT_TRUE(recorder.WaitForEvents(SubscriberEvent::Type::kSubscribed, 1));
  v1::SubscribeResponse stale;
  *stale.mutable_stale()->mutable_key() = testing::Key("items", "1");
  stale.mutable_stale()->set_reason("resolver timeout");
  server.Push(stale);
  ASSERT_TRUE(recorder.WaitForEvents(SubscriberEvent::Type::kStale, 1));
  const SubscriberEvent event =
      recorder.events(SubscriberEvent::Type::kStale)[0];
  EXPECT_EQ(event.key, (EntityKey{"items", "1"}));
  EXPECT_EQ(event.reason, "resolver timeout");
  EXPECT_EQ(DescribeEvent(event), "stale items/1: resolver timeout");
}

TEST(SubscriberTest, RefreshAtTheSameVersionAfterStaleIsDelivered) {
  FakeEntitySyncServer server;
  ASSERT_TRUE(server.ok());
  Recorder recorder;
  std::unique_ptr<Subscriber> subscriber =
      MustCreate(FastOptions({server.target()}, recorder));
  ASSERT_TRUE(
      subscriber->Subscribe({"items", "1"}, recorder.Callback("a")).ok());
  ASSERT_TRUE(recorder.WaitForEvents(SubscriberEvent::Type::kSubscribed, 1));
  server.Push(UpdateMessage("items", "1", 5));
  server.Push(UpdateMessage("items", "1", 5));  // duplicate: dropped
  v1::SubscribeResponse stale;
  *stale.mutable_stale()->mutable_key() = testing::Key("items", "1");
  server.Push(stale);
  server.Push(UpdateMessage("items", "1", 5));  // the refresh: delivered
  server.Push(UpdateMessage("items", "1", 5));  // duplicate again: dropped
  server.Push(UpdateMessage("items", "1", 6));
  ASSERT_TRUE(recorder.WaitForUpdates(3));
  absl::SleepFor(absl::Milliseconds(50));
  EXPECT_THAT(recorder.updates(),
              ElementsAre("a:items/1@5", "a:items/1@5", "a:items/1@6"));
}

TEST(SubscriberTest, DestructorReturnsPromptlyWhileDisconnected) {
  const int dead_port = DeadPort();
  ASSERT_NE(dead_port, 0);
  Recorder recorder;
  SubscriberOptions options =
      FastOptions({absl::StrCat("127.0.0.1:", dead_port)}, recorder);
  options.backoff_initial = absl::Seconds(30);
  options.backoff_max = absl::Seconds(60);
  std::unique_ptr<Subscriber> subscriber = MustCreate(options);
  ASSERT_TRUE(
      subscriber->Subscribe({"items", "1"}, recorder.Callback("a")).ok());
  ASSERT_TRUE(recorder.WaitForEvents(SubscriberEvent::Type::kDisconnected, 1));
  EXPECT_FALSE(subscriber->IsConnected());
  EXPECT_FALSE(subscriber->WaitForConnected(absl::Milliseconds(20)));

  const absl::Time start = absl::Now();
  subscriber.reset();
  EXPECT_LT(absl::Now() - start, absl::Milliseconds(500));
}

TEST(SubscriberTest, DestructorReturnsPromptlyWhileConnected) {
  FakeEntitySyncServer server;
  ASSERT_TRUE(server.ok());
  Recorder recorder;
  std::unique_ptr<Subscriber> subscriber =
      MustCreate(FastOptions({server.target()}, recorder));
  ASSERT_TRUE(
      subscriber->Subscribe({"items", "1"}, recorder.Callback("a")).ok());
  ASSERT_TRUE(subscriber->WaitForConnected(kWait));
  ASSERT_TRUE(server.WaitForSubscribes(1, kWait));

  const absl::Time start = absl::Now();
  subscriber.reset();
  EXPECT_LT(absl::Now() - start, absl::Milliseconds(500));
  server.Push(UpdateMessage("items", "1", 1));
  EXPECT_THAT(recorder.updates(), IsEmpty());
}

TEST(SubscriberTest, RejectsBadArguments) {
  Recorder recorder;
  EXPECT_EQ(Subscriber::Create(SubscriberOptions{}).status().code(),
            absl::StatusCode::kInvalidArgument);
  SubscriberOptions bad_backoff = FastOptions({"127.0.0.1:1"}, recorder);
  bad_backoff.backoff_max = absl::Milliseconds(1);
  EXPECT_EQ(Subscriber::Create(bad_backoff).status().code(),
            absl::StatusCode::kInvalidArgument);
  SubscriberOptions bad_keepalive = FastOptions({"127.0.0.1:1"}, recorder);
  bad_keepalive.keepalive_time = absl::ZeroDuration();
  EXPECT_EQ(Subscriber::Create(bad_keepalive).status().code(),
            absl::StatusCode::kInvalidArgument);

  std::unique_ptr<Subscriber> subscriber = MustCreate(
      FastOptions({absl::StrCat("127.0.0.1:", DeadPort())}, recorder));
  EXPECT_EQ(subscriber->Subscribe({"", "1"}, recorder.Callback("a")).code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(subscriber->Subscribe({"items", ""}, recorder.Callback("a")).code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(subscriber->Subscribe({"items", "1"}, nullptr).code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_TRUE(
      subscriber->Subscribe({"items", "1"}, recorder.Callback("a")).ok());
  EXPECT_EQ(
      subscriber->Subscribe({"items", "1"}, recorder.Callback("a")).code(),
      absl::StatusCode::kAlreadyExists);
  EXPECT_EQ(subscriber->Unsubscribe({"items", "2"}).code(),
            absl::StatusCode::kNotFound);
}

}  // namespace
}  // namespace client
}  // namespace entitysync
