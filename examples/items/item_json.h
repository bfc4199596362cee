// The JSON rows the items resolver returns: one object per item and one per
// tag. Strings are escaped per RFC 8259; bytes that are not valid UTF-8
// become U+FFFD so the output is always valid JSON.
//
// Pure functions; thread-safe.
#ifndef ENTITYSYNC_EXAMPLES_ITEMS_ITEM_JSON_H_
#define ENTITYSYNC_EXAMPLES_ITEMS_ITEM_JSON_H_

#include <string>

#include "absl/strings/string_view.h"
#include "examples/items/items_store.h"

namespace entitysync::examples {

// Appends `text` as a quoted JSON string.
void AppendJsonString(absl::string_view text, std::string* out);

// {"id":"100","name":"Espresso cup","price_cents":450,"version":3}
std::string ItemJson(const Item& item);

// {"tag":"kitchen"}
std::string TagJson(absl::string_view tag);

}  // namespace entitysync::examples

#endif  // ENTITYSYNC_EXAMPLES_ITEMS_ITEM_JSON_H_
