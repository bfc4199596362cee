#include "adapters/webhook/envelope.h"

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "adapters/gateway/ws_codec.h"

namespace entitysync {
namespace webhook {
namespace {

void AppendPercentEncoded(absl::string_view text, std::string* out) {
  for (char c : text) {
    const unsigned char byte = static_cast<unsigned char>(c);
    if (byte <= 0x20 || byte >= 0x7f || c == '%') {
      absl::StrAppendFormat(out, "%%%02X", byte);
    } else {
      out->push_back(c);
    }
  }
}

}  // namespace

std::string KeyHeaderValue(const v1::EntityKey& key) {
  std::string out;
  AppendPercentEncoded(key.entity(), &out);
  out.push_back('/');
  AppendPercentEncoded(key.id(), &out);
  return out;
}

Envelope BuildEnvelope(const v1::Update& update, int attempt) {
  v1::SubscribeResponse response;
  *response.mutable_update() = update;
  std::vector<gateway::WsFrame> frames =
      gateway::EncodeResponse(response, gateway::WsMode::kEnveloped);
  Envelope envelope;
  if (!frames.empty()) envelope.body = std::move(frames.front().data);
  envelope.headers = {
      {"Content-Type", "application/json"},
      {"User-Agent", "entitysync-webhook"},
      {std::string(kKeyHeader), KeyHeaderValue(update.key())},
      {std::string(kVersionHeader), absl::StrCat(update.version())},
      {std::string(kAttemptHeader), absl::StrCat(attempt)},
  };
  return envelope;
}

}  // namespace webhook
}  // namespace entitysync
