#include "examples/items/items_resolve.h"

#include <algorithm>
#include <optional>

#include "absl/strings/str_cat.h"
#include "common/status_macros.h"
#include "examples/items/item_json.h"

namespace entitysync::examples {
namespace {

using ::entitysync::v1::ResolvedKey;
using ::entitysync::v1::ResolveRequest;

void AddJsonRow(std::string json, ResolvedKey* result) {
  entitysync::v1::Row* row = result->add_rows();
  row->set_data(std::move(json));
  row->set_content_type(kJsonContentType);
}

absl::Status ValidateKeys(const ResolveRequest& request) {
  for (int i = 0; i < request.keys_size(); ++i) {
    const entitysync::v1::EntityKey& key = request.keys(i);
    if (key.entity() != kItemsEntity) {
      return absl::InvalidArgumentError(
          absl::StrCat("keys[", i, "]: entity \"", key.entity(),
                       "\" is not served here (only \"", kItemsEntity, "\")"));
    }
    if (key.id().empty()) {
      return absl::InvalidArgumentError(
          absl::StrCat("keys[", i, "]: empty id"));
    }
  }
  return absl::OkStatus();
}

// See "Authorization" in the header. REASON_UNSPECIFIED is authorized too:
// withholding is the safe answer to a request we do not understand.
bool MustAuthorize(const ResolveRequest& request) {
  return request.reason() != ResolveRequest::CHANGE ||
         !request.credentials().empty();
}

absl::Status ResolveWildcard(ItemsStore& store, const ResolveRequest& request,
                             ResolvedKey* result) {
  const bool authorize = MustAuthorize(request);
  ASSIGN_OR_RETURN(ItemListing listing,
                   store.ListLive(
                       [&](const Item& item) {
                         return !authorize ||
                                MayView(item.acl, request.credentials());
                       },
                       kMaxWildcardRows));
  result->set_status(ResolvedKey::FOUND);
  result->set_version(listing.max_version);
  for (const Item& item : listing.items) AddJsonRow(ItemJson(item), result);
  return absl::OkStatus();
}

absl::Status ResolveOne(ItemsStore& store, const ResolveRequest& request,
                        ResolvedKey* result) {
  ASSIGN_OR_RETURN(std::optional<Item> item, store.Find(result->key().id()));
  if (!item.has_value()) {
    result->set_status(ResolvedKey::NOT_FOUND);
    return absl::OkStatus();
  }
  if (item->deleted) {
    result->set_status(ResolvedKey::NOT_FOUND);
    result->set_version(item->version);
    return absl::OkStatus();
  }
  if (MustAuthorize(request) && !MayView(item->acl, request.credentials())) {
    result->set_status(ResolvedKey::DENIED);
    return absl::OkStatus();
  }
  result->set_status(ResolvedKey::FOUND);
  result->set_version(item->version);
  AddJsonRow(ItemJson(*item), result);
  for (const std::string& tag : item->tags) AddJsonRow(TagJson(tag), result);
  return absl::OkStatus();
}

}  // namespace

bool MayView(const std::vector<std::string>& acl,
             absl::string_view credentials) {
  if (acl.empty()) return true;
  return std::find(acl.begin(), acl.end(), credentials) != acl.end();
}

absl::Status ResolveItems(ItemsStore& store, const ResolveRequest& request,
                          entitysync::v1::ResolveResponse* response) {
  RETURN_IF_ERROR(ValidateKeys(request));
  for (const entitysync::v1::EntityKey& key : request.keys()) {
    ResolvedKey* result = response->add_results();
    *result->mutable_key() = key;
    if (key.id() == "*") {
      RETURN_IF_ERROR(ResolveWildcard(store, request, result));
    } else {
      RETURN_IF_ERROR(ResolveOne(store, request, result));
    }
  }
  return absl::OkStatus();
}

}  // namespace entitysync::examples
