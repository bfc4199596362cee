// UpdateToJsonLine renders one update as a single line of JSON, the output
// format of `entitysync subscribe`:
//
//   {"key":{"entity":"items","id":"100"},"version":3,"removed":false,
//    "rows":[{"content_type":"application/json","data":"{\"n\":1}"}]}
//
// A row's data is a JSON string when it is valid UTF-8 (so `jq -r` gives the
// bytes back, and JSON rows can be read with `fromjson`), otherwise
// "data_base64" holds its standard base64 encoding. Keys and content types
// are escaped; invalid UTF-8 in them becomes U+FFFD.
#ifndef ENTITYSYNC_CLIENT_UPDATE_JSON_H_
#define ENTITYSYNC_CLIENT_UPDATE_JSON_H_

#include <string>

#include "absl/strings/string_view.h"
#include "common/utf8.h"
#include "entitysync/v1/entitysync.pb.h"

namespace entitysync {
namespace client {

// No trailing newline.
std::string UpdateToJsonLine(const v1::Update& update);

// `text` as a quoted JSON string; invalid UTF-8 becomes U+FFFD.
std::string JsonQuote(absl::string_view text);

}  // namespace client
}  // namespace entitysync

#endif  // ENTITYSYNC_CLIENT_UPDATE_JSON_H_
