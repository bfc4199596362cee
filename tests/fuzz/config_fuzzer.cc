// The resolver table parser: any text gives a config or a precise error,
// never a crash; a parsed config has every default applied.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>

#include "server/core/config.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string text(reinterpret_cast<const char*>(data), size);
  const auto config = entitysync::ParseServerConfig(text);
  if (config.ok()) {
    for (const auto& entity : config->entities()) {
      if (entity.resolver().target().empty() ||
          entity.resolver().timeout_ms() == 0) {
        std::abort();
      }
    }
  } else if (config.status().message().empty()) {
    std::abort();
  }
  return 0;
}
