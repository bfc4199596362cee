#include "adapters/webhook/endpoint_relay.h"

#include <algorithm>
#include <chrono>
#include <future>
#include <utility>

#include "absl/strings/str_cat.h"
#include "adapters/webhook/envelope.h"
#include "common/log.h"

namespace entitysync {
namespace webhook {
namespace {

DeliveryQueueOptions QueueOptions(const EndpointSpec& spec) {
  DeliveryQueueOptions options;
  options.max_pending_keys = spec.max_pending_keys;
  options.max_in_flight = spec.max_in_flight;
  options.retry = spec.retry;
  return options;
}

// A monotonic "now" for the queue's retry and max_age times: steady_clock
// carried in an absl::Time (only differences between such times matter).
absl::Time MonotonicNow() {
  return absl::UnixEpoch() +
         absl::FromChrono(std::chrono::steady_clock::now().time_since_epoch());
}

std::string Describe(const v1::Update& update) {
  return absl::StrCat(KeyHeaderValue(update.key()), " version ",
                      update.version());
}

}  // namespace

EndpointRelay::EndpointRelay(EndpointSpec spec, boost::asio::io_context& io)
    : spec_(std::move(spec)),
      strand_(boost::asio::make_strand(io)),
      poster_(std::make_shared<HttpPoster>(
          strand_, spec_.http, spec_.request_timeout, spec_.max_in_flight)),
      queue_(QueueOptions(spec_)),
      timer_(strand_) {}

EndpointRelay::~EndpointRelay() { StopSubscribing(); }

absl::Status EndpointRelay::Start(const std::vector<std::string>& targets) {
  client::SubscriberOptions options;
  options.targets = targets;
  options.credentials = spec_.credentials;
  options.on_event = [this](const client::SubscriberEvent& event) {
    OnEvent(event);
  };
  absl::StatusOr<std::unique_ptr<client::Subscriber>> subscriber =
      client::Subscriber::Create(std::move(options));
  if (!subscriber.ok()) return subscriber.status();
  subscriber_ = *std::move(subscriber);
  for (const client::EntityKey& key : spec_.keys) {
    absl::Status status = subscriber_->Subscribe(
        key, [this](const v1::Update& update) { OnUpdate(update); });
    if (!status.ok()) return status;
  }
  Log(LogLevel::kInfo,
      absl::StrCat("endpoint \"", spec_.name, "\": POSTing to http://",
                   spec_.http.host_header, " the updates of ",
                   spec_.keys.size(), " key(s)"));
  return absl::OkStatus();
}

void EndpointRelay::StopSubscribing() { subscriber_.reset(); }

void EndpointRelay::BeginStop() {
  std::promise<void> done;
  boost::asio::post(strand_, [this, &done] {
    stopping_ = true;
    timer_.cancel();
    done.set_value();
  });
  done.get_future().wait();
}

void EndpointRelay::Abort() {
  std::promise<void> done;
  boost::asio::post(strand_, [this, &done] {
    stopping_ = true;
    timer_.cancel();
    poster_->Close();
    done.set_value();
  });
  done.get_future().wait();
}

void EndpointRelay::OnUpdate(const v1::Update& update) {
  switch (queue_.Offer(update)) {
    case DeliveryQueue::OfferResult::kQueued:
      if (overflowing_.exchange(false)) {
        Log(LogLevel::kInfo, absl::StrCat("endpoint \"", spec_.name,
                                          "\": queue has room again"));
      }
      SchedulePump();
      break;
    case DeliveryQueue::OfferResult::kConflated:
    case DeliveryQueue::OfferResult::kOutdated:
      break;
    case DeliveryQueue::OfferResult::kOverflow:
      if (!overflowing_.exchange(true)) {
        Log(LogLevel::kWarning,
            absl::StrCat("endpoint \"", spec_.name, "\": queue full (",
                         spec_.max_pending_keys,
                         " keys waiting): dropping updates of further keys, "
                         "first ",
                         Describe(update)));
      }
      break;
  }
}

void EndpointRelay::OnEvent(const client::SubscriberEvent& event) {
  const std::string prefix = absl::StrCat("endpoint \"", spec_.name, "\": ");
  switch (event.type) {
    case client::SubscriberEvent::Type::kConnected:
      if (!stream_up_) {
        Log(LogLevel::kInfo,
            absl::StrCat(prefix, "subscribe stream up (", event.target, ")"));
      }
      stream_up_ = true;
      stream_reported_ = true;
      break;
    case client::SubscriberEvent::Type::kDisconnected:
      if (stream_up_ || !stream_reported_) {
        Log(LogLevel::kWarning,
            absl::StrCat(prefix, "subscribe stream down (", event.target, ": ",
                         event.status.ToString(), "); reconnecting"));
      }
      stream_up_ = false;
      stream_reported_ = true;
      break;
    case client::SubscriberEvent::Type::kSubscribed:
      Log(LogLevel::kInfo, absl::StrCat(prefix, "subscribed ",
                                        client::EntityKeyToString(event.key)));
      break;
    case client::SubscriberEvent::Type::kError:
      if (event.final) {
        Log(LogLevel::kError,
            absl::StrCat(prefix, "subscription ",
                         client::EntityKeyToString(event.key),
                         " refused: ", event.status.ToString(), " (dropped)"));
      }
      break;
    case client::SubscriberEvent::Type::kGoAway:
      Log(LogLevel::kInfo,
          absl::StrCat(prefix, "server draining; reconnecting"));
      break;
    case client::SubscriberEvent::Type::kStale:
      // Not delivered (see docs): the endpoint keeps the last state it got
      // and receives the key's next update.
      break;
  }
}

void EndpointRelay::SchedulePump() {
  if (pump_scheduled_.exchange(true)) return;
  boost::asio::post(strand_, [this] { Pump(); });
}

void EndpointRelay::Pump() {
  pump_scheduled_ = false;
  if (stopping_) return;
  while (std::optional<Delivery> delivery = queue_.TakeReady(MonotonicNow())) {
    Envelope envelope = BuildEnvelope(delivery->update, delivery->attempt);
    envelope.headers.insert(envelope.headers.end(), spec_.headers.begin(),
                            spec_.headers.end());
    auto taken = std::make_shared<Delivery>(*std::move(delivery));
    poster_->Post(
        std::move(envelope.body), envelope.headers,
        [this, taken](PostResult result) { OnPosted(*taken, result); });
  }
  ArmTimer();
}

void EndpointRelay::OnPosted(const Delivery& delivery,
                             const PostResult& result) {
  const ResponseClass outcome = result.status == 0
                                    ? ResponseClass::kRetry
                                    : spec_.Classify(result.status);
  const DeliveryQueue::Completion completion =
      queue_.Complete(delivery, outcome, result.retry_after, MonotonicNow());
  const std::string answer =
      result.status == 0 ? result.error : absl::StrCat("HTTP ", result.status);
  switch (completion.kind) {
    case DeliveryQueue::Completion::Kind::kDelivered:
      SetFailing(false, answer);
      break;
    case DeliveryQueue::Completion::Kind::kDiscarded:
      SetFailing(false, answer);
      Log(LogLevel::kWarning,
          absl::StrCat("endpoint \"", spec_.name, "\": discarded ",
                       Describe(delivery.update), ": ", answer,
                       " (a discard code: not retried)"));
      break;
    case DeliveryQueue::Completion::Kind::kRetry:
      SetFailing(true, absl::StrCat(Describe(delivery.update), ": ", answer));
      break;
    case DeliveryQueue::Completion::Kind::kGaveUp:
      SetFailing(true, absl::StrCat(Describe(delivery.update), ": ", answer));
      Log(LogLevel::kError,
          absl::StrCat("endpoint \"", spec_.name, "\": gave up ",
                       Describe(delivery.update), " after ",
                       completion.attempts, " attempt(s): ", answer));
      break;
  }
  SchedulePump();
}

void EndpointRelay::SetFailing(bool failing, const std::string& why) {
  if (failing == failing_) return;
  failing_ = failing;
  if (failing) {
    Log(LogLevel::kWarning,
        absl::StrCat("endpoint \"", spec_.name, "\": deliveries failing (", why,
                     "); retrying with backoff"));
  } else {
    Log(LogLevel::kInfo,
        absl::StrCat("endpoint \"", spec_.name, "\": endpoint answers again (",
                     why, ")"));
  }
}

void EndpointRelay::ArmTimer() {
  const absl::Time next = queue_.NextRetryAt();
  if (stopping_ || next == absl::InfiniteFuture() || next >= timer_at_) return;
  timer_at_ = next;
  timer_.expires_after(absl::ToChronoNanoseconds(
      std::max(next - MonotonicNow(), absl::ZeroDuration())));
  timer_.async_wait([this](boost::system::error_code error) {
    if (error) return;
    timer_at_ = absl::InfiniteFuture();
    Pump();
  });
}

}  // namespace webhook
}  // namespace entitysync
