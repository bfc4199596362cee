// EndpointRelay relays the updates of one configured endpoint: its own
// client::Subscriber (one Subscribe stream, with the endpoint's credentials)
// feeds a DeliveryQueue, and an HttpPoster POSTs what the queue hands out;
// a timer wakes retries. It logs one line per state change (stream
// connected or lost, a key subscribed or refused, deliveries failing or
// recovering, the queue overflowing) and per discarded or given-up delivery;
// never a header value or the credentials.
//
// Threading: updates arrive on the subscriber's thread and only enter the
// queue; everything else runs on the endpoint's strand of the relay's
// io_context. Start, StopSubscribing, BeginStop, Abort and in_flight may be
// called from any thread except the strand and subscriber callbacks.
#ifndef ENTITYSYNC_ADAPTERS_WEBHOOK_ENDPOINT_RELAY_H_
#define ENTITYSYNC_ADAPTERS_WEBHOOK_ENDPOINT_RELAY_H_

#include <atomic>
#include <boost/asio.hpp>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/time/time.h"
#include "adapters/webhook/delivery_queue.h"
#include "adapters/webhook/http_poster.h"
#include "adapters/webhook/webhook_config.h"
#include "client/subscriber.h"
#include "client/subscriber_event.h"

namespace entitysync {
namespace webhook {

class EndpointRelay {
 public:
  EndpointRelay(EndpointSpec spec, boost::asio::io_context& io);
  ~EndpointRelay();

  EndpointRelay(const EndpointRelay&) = delete;
  EndpointRelay& operator=(const EndpointRelay&) = delete;

  // Starts the Subscribe stream to `targets` and subscribes every key.
  absl::Status Start(const std::vector<std::string>& targets);

  // Ends the Subscribe stream; no update enters the queue afterwards.
  // Blocks until the subscriber's thread is done.
  void StopSubscribing();

  // No new request starts (retries included); requests in flight go on.
  void BeginStop();

  // Aborts the requests in flight and closes connections.
  void Abort();

  size_t in_flight() const { return queue_.in_flight(); }
  const std::string& name() const { return spec_.name; }

 private:
  void OnUpdate(const v1::Update& update);
  void OnEvent(const client::SubscriberEvent& event);
  void SchedulePump();

  // On strand_.
  void Pump();
  void OnPosted(const Delivery& delivery, const PostResult& result);
  void ArmTimer();
  void SetFailing(bool failing, const std::string& why);

  // Const after construction.
  const EndpointSpec spec_;
  HttpPoster::Executor strand_;
  const std::shared_ptr<HttpPoster> poster_;

  DeliveryQueue queue_;
  std::unique_ptr<client::Subscriber> subscriber_;
  std::atomic<bool> pump_scheduled_{false};
  std::atomic<bool> overflowing_{false};

  // Used on the subscriber's thread only.
  bool stream_up_ = false;
  bool stream_reported_ = false;

  // Used on strand_ only.
  bool stopping_ = false;
  bool failing_ = false;
  boost::asio::steady_timer timer_;
  absl::Time timer_at_ = absl::InfiniteFuture();
};

}  // namespace webhook
}  // namespace entitysync

#endif  // ENTITYSYNC_ADAPTERS_WEBHOOK_ENDPOINT_RELAY_H_
