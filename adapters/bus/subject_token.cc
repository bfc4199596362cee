#include "adapters/bus/subject_token.h"

#include "absl/strings/str_cat.h"

namespace entitysync {
namespace {

bool IsPlain(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
         (c >= '0' && c <= '9') || c == '_' || c == '-';
}

int HexValue(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

}  // namespace

std::string EncodeSubjectToken(absl::string_view id) {
  static constexpr char kHex[] = "0123456789ABCDEF";
  std::string token;
  token.reserve(id.size());
  for (char c : id) {
    if (IsPlain(c)) {
      token.push_back(c);
    } else {
      const unsigned char b = static_cast<unsigned char>(c);
      token.push_back('~');
      token.push_back(kHex[b >> 4]);
      token.push_back(kHex[b & 0xF]);
    }
  }
  return token;
}

std::optional<std::string> DecodeSubjectToken(absl::string_view token) {
  std::string id;
  for (size_t i = 0; i < token.size(); ++i) {
    const char c = token[i];
    if (IsPlain(c)) {
      id.push_back(c);
      continue;
    }
    if (c != '~' || i + 2 >= token.size()) return std::nullopt;
    const int hi = HexValue(token[i + 1]);
    const int lo = HexValue(token[i + 2]);
    if (hi < 0 || lo < 0) return std::nullopt;
    const char decoded = static_cast<char>((hi << 4) | lo);
    // Plain bytes are never escaped: only one encoding per id.
    if (IsPlain(decoded)) return std::nullopt;
    id.push_back(decoded);
    i += 2;
  }
  return id;
}

std::string KeySubject(absl::string_view prefix, absl::string_view entity,
                       absl::string_view id) {
  if (id == "*") return absl::StrCat(prefix, ".", entity, ".*");
  return absl::StrCat(prefix, ".", entity, ".", EncodeSubjectToken(id));
}

}  // namespace entitysync
