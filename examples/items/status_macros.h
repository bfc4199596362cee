// RETURN_IF_ERROR / ASSIGN_OR_RETURN for the examples.
//
// Abseil 20220623 on Debian 12 has no status_macros.h. The examples keep their
// own copy so they build without depending on server/ internals; replace it
// with the project's shared header once one exists.
#ifndef ENTITYSYNC_EXAMPLES_ITEMS_STATUS_MACROS_H_
#define ENTITYSYNC_EXAMPLES_ITEMS_STATUS_MACROS_H_

#include <utility>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

// Returns from the enclosing function when `expr` (an absl::Status) is not OK.
#define RETURN_IF_ERROR(expr)                    \
  do {                                           \
    ::absl::Status status_macro_status = (expr); \
    if (!status_macro_status.ok()) {             \
      return status_macro_status;                \
    }                                            \
  } while (false)

// `lhs = value of expr` (an absl::StatusOr<T>), or returns its error.
// `lhs` may declare a variable: ASSIGN_OR_RETURN(auto x, Foo());
#define ASSIGN_OR_RETURN(lhs, expr)    \
  STATUS_MACROS_ASSIGN_OR_RETURN_IMPL( \
      STATUS_MACROS_CONCAT(status_macro_or_, __LINE__), lhs, expr)

#define STATUS_MACROS_ASSIGN_OR_RETURN_IMPL(tmp, lhs, expr) \
  auto tmp = (expr);                                        \
  if (!tmp.ok()) {                                          \
    return tmp.status();                                    \
  }                                                         \
  lhs = *std::move(tmp)

#define STATUS_MACROS_CONCAT_INNER(a, b) a##b
#define STATUS_MACROS_CONCAT(a, b) STATUS_MACROS_CONCAT_INNER(a, b)

#endif  // ENTITYSYNC_EXAMPLES_ITEMS_STATUS_MACROS_H_
