// Any non-empty id becomes exactly one valid NATS subject token (ids are
// never empty past validation), and decodes back to itself; no input makes
// the decoder crash.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>

#include "adapters/bus/subject_token.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string input(reinterpret_cast<const char*>(data), size);
  const std::string token = entitysync::EncodeSubjectToken(input);
  if (token.empty() != input.empty()) std::abort();
  for (const char c : token) {
    // NATS: a token has no separator, no wildcard, no whitespace.
    if (c == '.' || c == '*' || c == '>' || c <= ' ' || c == 0x7f) {
      std::abort();
    }
  }
  const auto decoded = entitysync::DecodeSubjectToken(token);
  if (!decoded.has_value() || *decoded != input) std::abort();
  (void)entitysync::DecodeSubjectToken(input);
  return 0;
}
