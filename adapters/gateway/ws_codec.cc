#include "adapters/gateway/ws_codec.h"

#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "common/utf8.h"
#include "nlohmann/json.hpp"

namespace entitysync {
namespace gateway {
namespace {

using Json = nlohmann::json;

// Largest integer a JavaScript number holds exactly.
constexpr uint64_t kMaxSafeInteger = (uint64_t{1} << 53) - 1;

// A JSON string literal; invalid UTF-8 is replaced rather than rejected.
std::string Quote(absl::string_view text) {
  return Json(std::string(text))
      .dump(-1, ' ', false, Json::error_handler_t::replace);
}

std::string KeyJson(const v1::EntityKey& key) {
  return absl::StrCat("{\"entity\":", Quote(key.entity()),
                      ",\"id\":", Quote(key.id()), "}");
}

std::string VersionJson(uint64_t version) {
  if (version <= kMaxSafeInteger) return absl::StrCat(version);
  return absl::StrCat("\"", version, "\"");
}

absl::Status Invalid(absl::string_view message) {
  return absl::InvalidArgumentError(message);
}

absl::StatusOr<uint64_t> ReadUint(const Json& value, absl::string_view name) {
  if (value.is_number_unsigned()) return value.get<uint64_t>();
  if (value.is_number_integer() && value.get<int64_t>() >= 0) {
    return static_cast<uint64_t>(value.get<int64_t>());
  }
  uint64_t parsed = 0;
  if (value.is_string() &&
      absl::SimpleAtoi(value.get_ref<const std::string&>(), &parsed)) {
    return parsed;
  }
  return Invalid(absl::StrCat("\"", name,
                              "\" must be a non-negative integer (or a "
                              "decimal string)"));
}

absl::Status ReadKey(const Json& message, v1::EntityKey* key) {
  auto body = message.find("body");
  if (body == message.end()) return Invalid("\"body\" is missing");
  if (!body->is_object()) {
    return Invalid("\"body\" must be an object {\"entity\":..., \"id\":...}");
  }
  auto entity = body->find("entity");
  auto id = body->find("id");
  if (entity == body->end() || !entity->is_string()) {
    return Invalid("\"body.entity\" must be a string");
  }
  if (id == body->end() || !id->is_string()) {
    return Invalid("\"body.id\" must be a string");
  }
  key->set_entity(entity->get<std::string>());
  key->set_id(id->get<std::string>());
  return absl::OkStatus();
}

// A row for the enveloped mode: embedded JSON when it is JSON, else text or
// base64.
void AppendRowJson(const v1::Row& row, std::string* out) {
  absl::StrAppend(out, "{\"content_type\":", Quote(row.content_type()));
  if (!row.data().empty() && IsValidUtf8(row.data()) &&
      Json::accept(row.data())) {
    absl::StrAppend(out, ",\"json\":", row.data(), "}");
  } else if (IsValidUtf8(row.data())) {
    absl::StrAppend(out, ",\"text\":", Quote(row.data()), "}");
  } else {
    absl::StrAppend(out, ",\"base64\":\"", absl::Base64Escape(row.data()),
                    "\"}");
  }
}

std::string EncodeEnveloped(const v1::SubscribeResponse& response) {
  switch (response.kind_case()) {
    case v1::SubscribeResponse::kSubscribed:
      return absl::StrCat("{\"type\":\"subscribed\",\"request_id\":",
                          VersionJson(response.subscribed().request_id()),
                          ",\"key\":", KeyJson(response.subscribed().key()),
                          "}");
    case v1::SubscribeResponse::kUnsubscribed:
      return absl::StrCat("{\"type\":\"unsubscribed\",\"request_id\":",
                          VersionJson(response.unsubscribed().request_id()),
                          ",\"key\":", KeyJson(response.unsubscribed().key()),
                          "}");
    case v1::SubscribeResponse::kUpdate: {
      const v1::Update& update = response.update();
      std::string out = absl::StrCat(
          "{\"type\":\"update\",\"key\":", KeyJson(update.key()),
          ",\"version\":", VersionJson(update.version()),
          ",\"removed\":", update.removed() ? "true" : "false", ",\"rows\":[");
      for (int i = 0; i < update.rows_size(); ++i) {
        if (i > 0) out.push_back(',');
        AppendRowJson(update.rows(i), &out);
      }
      out.append("]}");
      return out;
    }
    case v1::SubscribeResponse::kStale:
      return absl::StrCat(
          "{\"type\":\"stale\",\"key\":", KeyJson(response.stale().key()),
          ",\"reason\":", Quote(response.stale().reason()), "}");
    case v1::SubscribeResponse::kError: {
      const v1::Error& error = response.error();
      absl::Status status(static_cast<absl::StatusCode>(error.code()),
                          error.message());
      std::string out = EncodeErrorJson(
          error.request_id(), status, error.has_key() ? &error.key() : nullptr);
      if (error.superseded()) {
        out.pop_back();
        out.append(",\"superseded\":true}");
      }
      return out;
    }
    case v1::SubscribeResponse::kAuthenticated:
      return absl::StrCat("{\"type\":\"authenticated\",\"request_id\":",
                          VersionJson(response.authenticated().request_id()),
                          "}");
    case v1::SubscribeResponse::kPassthroughReply: {
      const v1::PassthroughReply& reply = response.passthrough_reply();
      std::string out =
          absl::StrCat("{\"type\":\"passthrough_reply\",\"request_id\":",
                       VersionJson(reply.request_id()));
      if (reply.no_reply()) {
        absl::StrAppend(&out, ",\"no_reply\":true}");
      } else if (IsValidUtf8(reply.data())) {
        absl::StrAppend(&out, ",\"data\":", Quote(reply.data()), "}");
      } else {
        absl::StrAppend(&out, ",\"data_base64\":\"",
                        absl::Base64Escape(reply.data()), "\"}");
      }
      return out;
    }
    case v1::SubscribeResponse::kGoaway:
    case v1::SubscribeResponse::kBatch:  // the gateway does not ask for them
    case v1::SubscribeResponse::KIND_NOT_SET:
      break;
  }
  return "";
}

std::vector<WsFrame> EncodeLegacy(const v1::SubscribeResponse& response) {
  std::vector<WsFrame> frames;
  switch (response.kind_case()) {
    case v1::SubscribeResponse::kUpdate:
      for (const v1::Row& row : response.update().rows()) {
        frames.push_back({row.data(), !IsValidUtf8(row.data())});
      }
      break;
    case v1::SubscribeResponse::kError:
      // Legacy clients have no request ids: a superseded subscribe says
      // nothing to them (the later request's outcome is what they see).
      if (!response.error().superseded()) {
        frames.push_back({EncodeEnveloped(response), false});
      }
      break;
    case v1::SubscribeResponse::kPassthroughReply: {
      if (response.passthrough_reply().no_reply()) break;
      const std::string& data = response.passthrough_reply().data();
      frames.push_back({data, !IsValidUtf8(data)});
      break;
    }
    default:
      break;
  }
  return frames;
}

}  // namespace

WsMode ChooseMode(absl::string_view offered, std::string* chosen) {
  chosen->clear();
  for (absl::string_view token : absl::StrSplit(offered, ',')) {
    token = absl::StripAsciiWhitespace(token);
    if (token == kEnvelopedSubprotocol) {
      *chosen = std::string(token);
      return WsMode::kEnveloped;
    }
    if (token == kBinarySubprotocol) {
      *chosen = std::string(token);
      return WsMode::kBinary;
    }
    if (token == kLegacySubprotocol) {
      *chosen = std::string(token);
      return WsMode::kLegacy;
    }
  }
  return WsMode::kLegacy;
}

absl::StatusOr<v1::SubscribeRequest> ParseClientText(absl::string_view text,
                                                     WsMode mode,
                                                     uint64_t* request_id_out) {
  Json message = Json::parse(text.begin(), text.end(), nullptr,
                             /*allow_exceptions=*/false);
  if (message.is_discarded()) return Invalid("the frame is not valid JSON");
  if (!message.is_object()) return Invalid("the frame must be a JSON object");
  v1::SubscribeRequest request;
  if (mode == WsMode::kEnveloped) {
    auto request_id = message.find("request_id");
    if (request_id != message.end()) {
      absl::StatusOr<uint64_t> id = ReadUint(*request_id, "request_id");
      if (!id.ok()) return id.status();
      request.set_request_id(*id);
      if (request_id_out != nullptr) *request_id_out = *id;
    }
  }
  auto action = message.find("action");
  if (action != message.end() && !action->is_string()) {
    return Invalid("\"action\" must be a string");
  }
  const std::string name =
      action == message.end() ? "" : action->get<std::string>();
  if (name == "subscribe") {
    v1::Subscribe* subscribe = request.mutable_subscribe();
    absl::Status status = ReadKey(message, subscribe->mutable_key());
    if (!status.ok()) return status;
    if (mode == WsMode::kEnveloped) {
      const Json& body = message["body"];
      auto known = body.find("known_version");
      if (known != body.end() && !known->is_null()) {
        absl::StatusOr<uint64_t> version = ReadUint(*known, "known_version");
        if (!version.ok()) return version.status();
        subscribe->set_known_version(*version);
      }
      auto skip = body.find("skip_snapshot");
      if (skip != body.end()) {
        if (!skip->is_boolean()) {
          return Invalid("\"skip_snapshot\" must be true or false");
        }
        subscribe->set_skip_snapshot(skip->get<bool>());
      }
    }
  } else if (name == "unsubscribe") {
    absl::Status status =
        ReadKey(message, request.mutable_unsubscribe()->mutable_key());
    if (!status.ok()) return status;
  } else if (name == "secret") {
    auto body = message.find("body");
    if (body == message.end() || !body->is_string()) {
      return Invalid("\"body\" of a secret must be a string");
    }
    request.mutable_authenticate()->set_secret(body->get<std::string>());
  } else {
    request.mutable_passthrough()->set_data(std::string(text));
  }
  return request;
}

std::vector<WsFrame> EncodeResponse(const v1::SubscribeResponse& response,
                                    WsMode mode) {
  if (mode == WsMode::kLegacy) return EncodeLegacy(response);
  std::vector<WsFrame> frames;
  std::string frame = EncodeEnveloped(response);
  if (!frame.empty()) frames.push_back({std::move(frame), false});
  return frames;
}

std::string EncodeErrorJson(uint64_t request_id, const absl::Status& status,
                            const v1::EntityKey* key) {
  std::string out = absl::StrCat(
      "{\"type\":\"error\",\"request_id\":", VersionJson(request_id),
      ",\"code\":", static_cast<int>(status.code()),
      ",\"status\":", Quote(absl::StatusCodeToString(status.code())),
      ",\"message\":", Quote(status.message()));
  if (key != nullptr) absl::StrAppend(&out, ",\"key\":", KeyJson(*key));
  out.push_back('}');
  return out;
}

}  // namespace gateway
}  // namespace entitysync
