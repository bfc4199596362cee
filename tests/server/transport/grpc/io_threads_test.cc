// IoThreads: tasks posted from any thread run on the I/O thread, in the
// order each poster posted them, and nothing runs or starts on a queue once
// it is shut down (an operation started there would abort the process).
#include "server/transport/grpc/io_threads.h"

#include <atomic>
#include <thread>
#include <vector>

#include "absl/synchronization/notification.h"
#include "grpcpp/security/server_credentials.h"
#include "grpcpp/server.h"
#include "grpcpp/server_builder.h"
#include "gtest/gtest.h"

namespace entitysync {
namespace {

TEST(IoThreadsTest, PostedTasksRunOnTheThreadInOrderPerPoster) {
  grpc::ServerBuilder builder;
  builder.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials());
  IoThreads threads(&builder, 2);
  std::unique_ptr<grpc::Server> server = builder.BuildAndStart();
  ASSERT_NE(server, nullptr);
  threads.Start();

  constexpr int kPosters = 4;
  constexpr int kTasks = 2000;
  IoThread& io = threads.at(1);
  std::vector<std::vector<int>> seen(kPosters);  // touched on `io` only
  std::atomic<int> off_thread{0};
  absl::Notification all_ran;
  std::atomic<int> ran{0};
  std::vector<std::thread> posters;
  for (int p = 0; p < kPosters; ++p) {
    posters.emplace_back([&, p] {
      for (int i = 0; i < kTasks; ++i) {
        io.Post([&, p, i] {
          if (!io.IsCurrent() || IoThread::Current() != &io) ++off_thread;
          seen[p].push_back(i);
          if (++ran == kPosters * kTasks) all_ran.Notify();
        });
      }
    });
  }
  for (std::thread& t : posters) t.join();
  ASSERT_TRUE(all_ran.WaitForNotificationWithTimeout(absl::Seconds(20)));
  EXPECT_EQ(off_thread.load(), 0);
  for (int p = 0; p < kPosters; ++p) {
    ASSERT_EQ(seen[p].size(), static_cast<size_t>(kTasks));
    for (int i = 0; i < kTasks; ++i) ASSERT_EQ(seen[p][i], i);
  }
  EXPECT_FALSE(io.IsCurrent());
  // From another I/O thread, Pick keeps the caller's own thread.
  absl::Notification picked;
  threads.at(0).Post([&] {
    EXPECT_EQ(&threads.Pick(), &threads.at(0));
    picked.Notify();
  });
  ASSERT_TRUE(picked.WaitForNotificationWithTimeout(absl::Seconds(10)));

  server->Shutdown();
  threads.Shutdown();
  EXPECT_FALSE(io.TryPost([] { ADD_FAILURE() << "ran after shutdown"; }));
  bool started = false;
  EXPECT_FALSE(
      io.StartOnQueue([&](grpc::CompletionQueue*) { started = true; }));
  EXPECT_FALSE(started);
}

}  // namespace
}  // namespace entitysync
