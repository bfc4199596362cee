// The conformance suite every Bus implementation must pass. An
// implementation's test defines a BusFactory and instantiates the suite:
//
//   INSTANTIATE_TEST_SUITE_P(InProcess, BusConformanceTest,
//                            ::testing::Values(MakeInProcessFactory()));
//
// A factory makes buses that share one medium (two replicas on one NATS).
#ifndef ENTITYSYNC_TESTS_ADAPTERS_BUS_BUS_CONFORMANCE_H_
#define ENTITYSYNC_TESTS_ADAPTERS_BUS_BUS_CONFORMANCE_H_

#include <functional>
#include <memory>
#include <string>

#include "adapters/bus/bus.h"
#include "gtest/gtest.h"

namespace entitysync::testing {

struct BusFactory {
  std::string name;
  // True when buses made by the factory see each other's notices (a shared
  // medium). The in-process bus is one replica: false.
  bool shared_medium = false;
  std::function<std::unique_ptr<Bus>()> make;
};

class BusConformanceTest : public ::testing::TestWithParam<BusFactory> {};

}  // namespace entitysync::testing

#endif  // ENTITYSYNC_TESTS_ADAPTERS_BUS_BUS_CONFORMANCE_H_
