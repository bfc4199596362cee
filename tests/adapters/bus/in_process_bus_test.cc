#include "adapters/bus/in_process_bus.h"

#include <memory>

#include "tests/adapters/bus/bus_conformance.h"

namespace entitysync::testing {
namespace {

INSTANTIATE_TEST_SUITE_P(InProcess, BusConformanceTest,
                         ::testing::Values(BusFactory{
                             "in_process", false,
                             [] { return std::make_unique<InProcessBus>(); }}),
                         [](const ::testing::TestParamInfo<BusFactory>& info) {
                           return info.param.name;
                         });

}  // namespace
}  // namespace entitysync::testing
