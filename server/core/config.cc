#include "server/core/config.h"

#include <fstream>
#include <sstream>

#include "absl/container/flat_hash_set.h"
#include "absl/strings/str_cat.h"
#include "google/protobuf/io/tokenizer.h"
#include "google/protobuf/text_format.h"
#include "server/core/entity_key.h"
#include "server/core/limits.h"

namespace entitysync {
namespace {

class ErrorCollector : public google::protobuf::io::ErrorCollector {
 public:
  void AddError(int line, google::protobuf::io::ColumnNumber column,
                const std::string& message) override {
    if (first_.empty()) {
      first_ = absl::StrCat("line ", line + 1, ", column ", column + 1, ": ",
                            message);
    }
  }
  const std::string& first() const { return first_; }

 private:
  std::string first_;
};

absl::Status ApplyTargetDefaults(v1::BackendTarget* target,
                                 absl::string_view where) {
  if (target->target().empty()) {
    return absl::InvalidArgumentError(absl::StrCat(where, ": target is empty"));
  }
  if (target->timeout_ms() == 0) {
    target->set_timeout_ms(kDefaultResolverTimeoutMs);
  }
  if (target->timeout_ms() > kMaxBackendTimeoutMs) {
    return absl::InvalidArgumentError(
        absl::StrCat(where, ": timeout_ms ", target->timeout_ms(),
                     " is over the limit of ", kMaxBackendTimeoutMs));
  }
  if (target->has_tls() &&
      target->tls().cert_file().empty() != target->tls().key_file().empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat(where,
                     ": tls needs both cert_file and key_file, or "
                     "neither"));
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<v1::ServerConfig> ParseServerConfig(absl::string_view text) {
  v1::ServerConfig config;
  google::protobuf::TextFormat::Parser parser;
  ErrorCollector errors;
  parser.RecordErrorsTo(&errors);
  if (!parser.ParseFromString(std::string(text), &config)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "config: ", errors.first().empty() ? "parse error" : errors.first()));
  }
  absl::flat_hash_set<std::string> names;
  Limits limits;
  for (int i = 0; i < config.entities_size(); ++i) {
    v1::EntityConfig* entity = config.mutable_entities(i);
    const std::string where =
        absl::StrCat("config: entities[", i, "] \"", entity->name(), "\"");
    v1::EntityKey probe;
    probe.set_entity(entity->name());
    probe.set_id("x");
    if (absl::Status s = ValidateKey(probe, limits, KeyUse::kNotify); !s.ok()) {
      return absl::InvalidArgumentError(
          absl::StrCat(where, ": invalid name (", s.message(), ")"));
    }
    if (!names.insert(entity->name()).second) {
      return absl::InvalidArgumentError(
          absl::StrCat(where, ": duplicate name"));
    }
    if (!entity->has_resolver()) {
      return absl::InvalidArgumentError(absl::StrCat(where, ": no resolver"));
    }
    if (absl::Status s = ApplyTargetDefaults(entity->mutable_resolver(), where);
        !s.ok()) {
      return s;
    }
    if (entity->resolve_mode() == v1::EntityConfig::CLUSTER_ONCE &&
        entity->per_credentials()) {
      return absl::InvalidArgumentError(absl::StrCat(
          where,
          ": resolve_mode CLUSTER_ONCE cannot be per_credentials (the rows "
          "depend on the viewer, so one resolve cannot serve every replica)"));
    }
    if (entity->max_batch_keys() == 0)
      entity->set_max_batch_keys(kDefaultMaxBatchKeys);
    if (entity->max_concurrent_resolves() == 0) {
      entity->set_max_concurrent_resolves(kDefaultMaxConcurrentResolves);
    }
    if (entity->max_concurrent_subscribe_resolves() == 0) {
      entity->set_max_concurrent_subscribe_resolves(
          kDefaultMaxConcurrentSubscribeResolves);
    }
  }
  if (config.has_passthrough()) {
    if (absl::Status s = ApplyTargetDefaults(config.mutable_passthrough(),
                                             "config: passthrough");
        !s.ok()) {
      return s;
    }
  }
  return config;
}

absl::StatusOr<v1::ServerConfig> LoadServerConfig(const std::string& path) {
  std::ifstream in(path);
  if (!in) {
    return absl::NotFoundError(absl::StrCat("cannot read config file ", path));
  }
  std::stringstream text;
  text << in.rdbuf();
  absl::StatusOr<v1::ServerConfig> config = ParseServerConfig(text.str());
  if (!config.ok()) {
    return absl::Status(config.status().code(),
                        absl::StrCat(path, ": ", config.status().message()));
  }
  return config;
}

}  // namespace entitysync
