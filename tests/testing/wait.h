// Polling helpers for tests of asynchronous code: wait for a condition with a
// bound instead of sleeping a fixed time.
#ifndef ENTITYSYNC_TESTS_TESTING_WAIT_H_
#define ENTITYSYNC_TESTS_TESTING_WAIT_H_

#include <functional>

#include "absl/time/clock.h"
#include "absl/time/time.h"

namespace entitysync::testing {

inline bool WaitFor(const std::function<bool()>& condition,
                    absl::Duration timeout = absl::Seconds(10)) {
  const absl::Time deadline = absl::Now() + timeout;
  while (absl::Now() < deadline) {
    if (condition()) return true;
    absl::SleepFor(absl::Milliseconds(2));
  }
  return condition();
}

}  // namespace entitysync::testing

#endif  // ENTITYSYNC_TESTS_TESTING_WAIT_H_
