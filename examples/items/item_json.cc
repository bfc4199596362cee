#include "examples/items/item_json.h"

#include <cstdint>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "common/utf8.h"

namespace entitysync::examples {

void AppendJsonString(absl::string_view text, std::string* out) {
  out->push_back('"');
  while (!text.empty()) {
    size_t length = Utf8SequenceLength(text);
    if (length == 0) {
      absl::StrAppend(out, "\\ufffd");
      text.remove_prefix(1);
      continue;
    }
    if (length > 1) {
      out->append(text.data(), length);
      text.remove_prefix(length);
      continue;
    }
    char c = text.front();
    text.remove_prefix(1);
    switch (c) {
      case '"':
        absl::StrAppend(out, "\\\"");
        break;
      case '\\':
        absl::StrAppend(out, "\\\\");
        break;
      case '\b':
        absl::StrAppend(out, "\\b");
        break;
      case '\f':
        absl::StrAppend(out, "\\f");
        break;
      case '\n':
        absl::StrAppend(out, "\\n");
        break;
      case '\r':
        absl::StrAppend(out, "\\r");
        break;
      case '\t':
        absl::StrAppend(out, "\\t");
        break;
      default:
        if (static_cast<uint8_t>(c) < 0x20) {
          absl::StrAppendFormat(out, "\\u%04x", static_cast<unsigned>(c));
        } else {
          out->push_back(c);
        }
    }
  }
  out->push_back('"');
}

std::string ItemJson(const Item& item) {
  std::string json = "{\"id\":";
  AppendJsonString(item.id, &json);
  absl::StrAppend(&json, ",\"name\":");
  AppendJsonString(item.name, &json);
  absl::StrAppend(&json, ",\"price_cents\":", item.price_cents,
                  ",\"version\":", item.version, "}");
  return json;
}

std::string TagJson(absl::string_view tag) {
  std::string json = "{\"tag\":";
  AppendJsonString(tag, &json);
  json.push_back('}');
  return json;
}

}  // namespace entitysync::examples
