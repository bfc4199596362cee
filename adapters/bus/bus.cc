#include "adapters/bus/bus.h"

namespace entitysync {

const char* BusStateName(BusState state) {
  switch (state) {
    case BusState::kConnected:
      return "connected";
    case BusState::kDisconnected:
      return "disconnected";
  }
  return "unknown";
}

}  // namespace entitysync
