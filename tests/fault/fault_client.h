// FaultClient: the real client library (client::Subscriber) subscribed to
// items/f0..f<keys-1>, recording per key the versions its callbacks saw, in
// order, and any update that arrived after Unsubscribe. Fast reconnects and
// keepalive pings (200 ms / 300 ms) so that faults are noticed quickly.
#ifndef ENTITYSYNC_TESTS_FAULT_FAULT_CLIENT_H_
#define ENTITYSYNC_TESTS_FAULT_FAULT_CLIENT_H_

#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "client/subscriber.h"
#include "gtest/gtest.h"

namespace entitysync::testing {

inline std::string Id(int k) { return absl::StrCat("f", k); }

// One client library Subscriber on every key, recording per key the
// versions its callbacks saw, in order.
class FaultClient {
 public:
  // quick: a 1 s connect timeout and 200 ms keepalive pings, to notice
  // faults fast. Otherwise the library's defaults (10 s, 30 s), for many
  // clients at once.
  FaultClient(const std::vector<int>& ports, int keys, bool quick = true)
      : seen_(keys), subscribed_(keys, false) {
    client::SubscriberOptions options;
    for (int port : ports) {
      options.targets.push_back(absl::StrCat("127.0.0.1:", port));
    }
    options.backoff_initial = absl::Milliseconds(20);
    options.backoff_max = absl::Milliseconds(200);
    if (quick) {
      options.connect_timeout = absl::Seconds(1);
      options.keepalive_time = absl::Milliseconds(200);
      options.keepalive_timeout = absl::Milliseconds(300);
    }
    auto subscriber = client::Subscriber::Create(options);
    EXPECT_TRUE(subscriber.ok()) << subscriber.status();
    subscriber_ = *std::move(subscriber);
    for (int k = 0; k < keys; ++k) Subscribe(k);
  }
  void Subscribe(int k) {
    {
      // Before the call: its snapshot may arrive before Subscribe returns.
      absl::MutexLock lock(&mu_);
      subscribed_[k] = true;
    }
    EXPECT_TRUE(subscriber_
                    ->Subscribe({"items", Id(k)},
                                [this, k](const v1::Update& u) {
                                  absl::MutexLock lock(&mu_);
                                  seen_[k].push_back(u.version());
                                  if (!subscribed_[k]) ++after_unsubscribe_;
                                })
                    .ok());
  }
  void Unsubscribe(int k) {
    {
      absl::MutexLock lock(&mu_);
      subscribed_[k] = false;
    }
    EXPECT_TRUE(subscriber_->Unsubscribe({"items", Id(k)}).ok());
  }
  uint64_t last(int k) const {
    absl::MutexLock lock(&mu_);
    return seen_[k].empty() ? 0 : seen_[k].back();
  }
  // Versions of key k in callback order never go down.
  bool Monotonic(int k, std::string* why) const {
    absl::MutexLock lock(&mu_);
    for (size_t i = 1; i < seen_[k].size(); ++i) {
      if (seen_[k][i] < seen_[k][i - 1]) {
        *why = absl::StrCat("key ", Id(k), ": ", seen_[k][i - 1], " then ",
                            seen_[k][i]);
        return false;
      }
    }
    return true;
  }
  int after_unsubscribe() const {
    absl::MutexLock lock(&mu_);
    return after_unsubscribe_;
  }

 private:
  mutable absl::Mutex mu_;
  std::vector<std::vector<uint64_t>> seen_ ABSL_GUARDED_BY(mu_);
  std::vector<bool> subscribed_ ABSL_GUARDED_BY(mu_);
  int after_unsubscribe_ ABSL_GUARDED_BY(mu_) = 0;
  std::unique_ptr<client::Subscriber> subscriber_;
};

}  // namespace entitysync::testing

#endif  // ENTITYSYNC_TESTS_FAULT_FAULT_CLIENT_H_
