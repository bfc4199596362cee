// RETURN_IF_ERROR / ASSIGN_OR_RETURN for absl::Status, which the Abseil on
// this platform (20220623) does not ship.
#ifndef ENTITYSYNC_COMMON_STATUS_MACROS_H_
#define ENTITYSYNC_COMMON_STATUS_MACROS_H_

#include <utility>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

#define ES_STATUS_CONCAT_INNER_(a, b) a##b
#define ES_STATUS_CONCAT_(a, b) ES_STATUS_CONCAT_INNER_(a, b)

#define RETURN_IF_ERROR(expr)                \
  do {                                       \
    ::absl::Status es_status_ = (expr);      \
    if (!es_status_.ok()) return es_status_; \
  } while (0)

#define ASSIGN_OR_RETURN(lhs, expr)                                         \
  ES_ASSIGN_OR_RETURN_IMPL_(ES_STATUS_CONCAT_(es_statusor_, __LINE__), lhs, \
                            expr)

#define ES_ASSIGN_OR_RETURN_IMPL_(statusor, lhs, expr) \
  auto statusor = (expr);                              \
  if (!statusor.ok()) return statusor.status();        \
  lhs = std::move(statusor).value()

#endif  // ENTITYSYNC_COMMON_STATUS_MACROS_H_
