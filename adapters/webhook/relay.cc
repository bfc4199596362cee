#include "adapters/webhook/relay.h"

#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"

namespace entitysync {
namespace webhook {

absl::StatusOr<std::unique_ptr<Relay>> Relay::Start(
    std::vector<EndpointSpec> endpoints, RelayOptions options) {
  if (options.targets.empty()) {
    return absl::InvalidArgumentError("no entitysync target");
  }
  if (options.threads < 1 || options.threads > 64) {
    return absl::InvalidArgumentError(
        absl::StrCat("threads must be 1 to 64, not ", options.threads));
  }
  std::unique_ptr<Relay> relay(new Relay());
  relay->work_.emplace(boost::asio::make_work_guard(relay->io_));
  for (int i = 0; i < options.threads; ++i) {
    relay->threads_.emplace_back([io = &relay->io_] { io->run(); });
  }
  for (EndpointSpec& spec : endpoints) {
    relay->endpoints_.push_back(
        std::make_unique<EndpointRelay>(std::move(spec), relay->io_));
    absl::Status started = relay->endpoints_.back()->Start(options.targets);
    if (!started.ok()) {
      return absl::Status(
          started.code(),
          absl::StrCat("endpoint \"", relay->endpoints_.back()->name(),
                       "\": ", started.message()));
    }
  }
  return relay;
}

Relay::~Relay() { Stop(absl::ZeroDuration()); }

void Relay::Stop(absl::Duration grace) {
  {
    absl::MutexLock lock(&stop_mu_);
    if (stopped_) return;
    stopped_ = true;
  }
  for (auto& endpoint : endpoints_) endpoint->StopSubscribing();
  for (auto& endpoint : endpoints_) endpoint->BeginStop();
  const absl::Time deadline = absl::Now() + grace;
  auto in_flight = [this] {
    size_t total = 0;
    for (auto& endpoint : endpoints_) total += endpoint->in_flight();
    return total;
  };
  while (in_flight() > 0 && absl::Now() < deadline) {
    absl::SleepFor(absl::Milliseconds(10));
  }
  for (auto& endpoint : endpoints_) endpoint->Abort();
  work_.reset();
  io_.stop();
  for (std::thread& thread : threads_) thread.join();
  threads_.clear();
  endpoints_.clear();
}

}  // namespace webhook
}  // namespace entitysync
