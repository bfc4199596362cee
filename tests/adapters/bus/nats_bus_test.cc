#include "adapters/bus/nats_bus.h"

#include <memory>

#include "tests/adapters/bus/bus_conformance.h"
#include "tests/testing/nats_server.h"

namespace entitysync::testing {
namespace {

// One nats-server shared by the whole suite, started on first use.
NatsServer& SharedServer() {
  static NatsServer* server = new NatsServer();
  return *server;
}

std::unique_ptr<Bus> MakeNatsBus() {
  NatsBusOptions options;
  options.urls = {SharedServer().url()};
  options.subject_prefix = "conformance";
  return NewNatsBus(options);
}

INSTANTIATE_TEST_SUITE_P(Nats, BusConformanceTest,
                         ::testing::Values(BusFactory{"nats", true,
                                                      &MakeNatsBus}),
                         [](const ::testing::TestParamInfo<BusFactory>& info) {
                           return info.param.name;
                         });

}  // namespace
}  // namespace entitysync::testing
