// A Subscriber that records what it is delivered, decoded, for tests of the
// hub and the scheduler. Thread-safe.
#ifndef ENTITYSYNC_TESTS_TESTING_RECORDING_SUBSCRIBER_H_
#define ENTITYSYNC_TESTS_TESTING_RECORDING_SUBSCRIBER_H_

#include <vector>

#include "absl/synchronization/mutex.h"
#include "entitysync/v1/entitysync.pb.h"
#include "grpcpp/impl/codegen/proto_utils.h"
#include "server/fanout/subscriber.h"

namespace entitysync::testing {

class RecordingSubscriber : public Subscriber {
 public:
  void Deliver(const OutboundMessage& msg) override {
    grpc::ByteBuffer copy = msg.bytes;
    v1::SubscribeResponse response;
    grpc::SerializationTraits<v1::SubscribeResponse>::Deserialize(&copy,
                                                                  &response);
    absl::MutexLock lock(&mu_);
    raw_.push_back(msg);
    messages_.push_back(std::move(response));
  }
  std::vector<v1::SubscribeResponse> messages() const {
    absl::MutexLock lock(&mu_);
    return messages_;
  }
  std::vector<OutboundMessage> raw() const {
    absl::MutexLock lock(&mu_);
    return raw_;
  }
  std::vector<v1::Update> updates() const {
    std::vector<v1::Update> out;
    for (const auto& m : messages()) {
      if (m.has_update()) out.push_back(m.update());
    }
    return out;
  }
  size_t count() const {
    absl::MutexLock lock(&mu_);
    return messages_.size();
  }

 private:
  mutable absl::Mutex mu_;
  std::vector<v1::SubscribeResponse> messages_;
  std::vector<OutboundMessage> raw_;
};

}  // namespace entitysync::testing

#endif  // ENTITYSYNC_TESTS_TESTING_RECORDING_SUBSCRIBER_H_
