#include "client/update_json.h"

#include <cstdint>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"

namespace entitysync {
namespace client {
namespace {

// Length of the valid UTF-8 sequence at the start of `text`, or 0 when it
// does not start with one (overlong forms, surrogates and code points above
// U+10FFFF are invalid).
size_t Utf8SequenceLength(absl::string_view text) {
  const auto byte = [&text](size_t i) { return static_cast<uint8_t>(text[i]); };
  const uint8_t lead = byte(0);
  if (lead < 0x80) return 1;
  size_t length;
  uint32_t min;
  uint32_t code_point;
  if ((lead & 0xE0) == 0xC0) {
    length = 2;
    min = 0x80;
    code_point = lead & 0x1F;
  } else if ((lead & 0xF0) == 0xE0) {
    length = 3;
    min = 0x800;
    code_point = lead & 0x0F;
  } else if ((lead & 0xF8) == 0xF0) {
    length = 4;
    min = 0x10000;
    code_point = lead & 0x07;
  } else {
    return 0;
  }
  if (text.size() < length) return 0;
  for (size_t i = 1; i < length; ++i) {
    if ((byte(i) & 0xC0) != 0x80) return 0;
    code_point = (code_point << 6) | (byte(i) & 0x3F);
  }
  if (code_point < min || code_point > 0x10FFFF ||
      (code_point >= 0xD800 && code_point <= 0xDFFF)) {
    return 0;
  }
  return length;
}

}  // namespace

std::string JsonQuote(absl::string_view text) {
  std::string out = "\"";
  while (!text.empty()) {
    const size_t length = Utf8SequenceLength(text);
    if (length == 0) {
      out += "\\ufffd";
      text.remove_prefix(1);
      continue;
    }
    const char c = text[0];
    if (length > 1) {
      out.append(text.data(), length);
    } else if (c == '"') {
      out += "\\\"";
    } else if (c == '\\') {
      out += "\\\\";
    } else if (c == '\n') {
      out += "\\n";
    } else if (c == '\r') {
      out += "\\r";
    } else if (c == '\t') {
      out += "\\t";
    } else if (static_cast<uint8_t>(c) < 0x20 || c == 0x7F) {
      absl::StrAppendFormat(&out, "\\u%04x", static_cast<uint8_t>(c));
    } else {
      out += c;
    }
    text.remove_prefix(length);
  }
  out += '"';
  return out;
}

std::string UpdateToJsonLine(const v1::Update& update) {
  std::string out = absl::StrCat(
      "{\"key\":{\"entity\":", JsonQuote(update.key().entity()),
      ",\"id\":", JsonQuote(update.key().id()),
      "},\"version\":", update.version(),
      ",\"removed\":", update.removed() ? "true" : "false", ",\"rows\":[");
  for (int i = 0; i < update.rows_size(); ++i) {
    const v1::Row& row = update.rows(i);
    if (i > 0) out += ',';
    absl::StrAppend(&out, "{\"content_type\":", JsonQuote(row.content_type()));
    if (IsValidUtf8(row.data())) {
      absl::StrAppend(&out, ",\"data\":", JsonQuote(row.data()), "}");
    } else {
      absl::StrAppend(&out, ",\"data_base64\":\"",
                      absl::Base64Escape(row.data()), "\"}");
    }
  }
  out += "]}";
  return out;
}

}  // namespace client
}  // namespace entitysync
