#include "bench/direct_target.h"

#include <arpa/inet.h>

namespace entitysync {
namespace bench {

std::string DirectTarget(const std::string& address) {
  const size_t colon = address.rfind(':');
  if (colon == std::string::npos) return address;
  const std::string host = address.substr(0, colon);
  in_addr parsed;
  if (inet_pton(AF_INET, host.c_str(), &parsed) == 1) {
    return "ipv4:" + address;
  }
  return address;
}

}  // namespace bench
}  // namespace entitysync
