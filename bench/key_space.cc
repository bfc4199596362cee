#include "bench/key_space.h"

#include <algorithm>

#include "absl/strings/str_cat.h"

namespace entitysync {
namespace bench {
namespace {

// Canonical decimal only: no sign, spaces or leading zeros.
std::optional<uint64_t> ParseDecimal(absl::string_view s) {
  if (s.empty() || s.size() > 19 || (s.size() > 1 && s[0] == '0')) {
    return std::nullopt;
  }
  uint64_t v = 0;
  for (char c : s) {
    if (c < '0' || c > '9') return std::nullopt;
    v = v * 10 + static_cast<uint64_t>(c - '0');
  }
  return v;
}

}  // namespace

KeySpace KeySpace::Numbered(uint64_t size) { return KeySpace(size, 0, 0); }

KeySpace KeySpace::PersonalGroup(uint64_t streams, uint64_t group_size) {
  const uint64_t groups = (streams + group_size - 1) / group_size;
  return KeySpace(streams + groups, streams, group_size);
}

std::string KeySpace::Id(uint64_t index) const {
  if (streams_ == 0) return absl::StrCat(index);
  if (index < streams_) return absl::StrCat("u", index);
  return absl::StrCat("g", index - streams_);
}

std::optional<uint64_t> KeySpace::Index(absl::string_view id) const {
  std::optional<uint64_t> n;
  if (streams_ == 0) {
    n = ParseDecimal(id);
  } else if (!id.empty() && id[0] == 'u') {
    n = ParseDecimal(id.substr(1));
    if (n && *n >= streams_) return std::nullopt;
  } else if (!id.empty() && id[0] == 'g') {
    n = ParseDecimal(id.substr(1));
    if (n) *n += streams_;
  }
  if (!n || *n >= size_) return std::nullopt;
  return n;
}

std::vector<uint64_t> KeySpace::KeysOfStream(uint64_t stream,
                                             uint64_t keys_per_stream) const {
  std::vector<uint64_t> keys;
  if (streams_ != 0) {
    keys = {stream, streams_ + stream / group_size_};
  } else {
    keys.reserve(std::min(keys_per_stream, size_));
    for (uint64_t j = 0; j < keys_per_stream && j < size_; ++j) {
      keys.push_back((stream * keys_per_stream + j) % size_);
    }
  }
  // Up to size_ consecutive ids mod size_ are distinct, so only the
  // personal_group pair could repeat, and it cannot (u < streams <= g).
  return keys;
}

}  // namespace bench
}  // namespace entitysync
