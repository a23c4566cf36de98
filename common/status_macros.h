// Early-return helpers for absl::Status / absl::StatusOr, as in Abseil's and
// Perfetto's codebases:
//
//   absl::StatusOr<Foo> MakeFoo() {
//     LABTRACE_RETURN_IF_ERROR(CheckInput());
//     LABTRACE_ASSIGN_OR_RETURN(Bar bar, LoadBar());
//     return Foo(bar);
//   }

#ifndef LABTRACE_COMMON_STATUS_MACROS_H_
#define LABTRACE_COMMON_STATUS_MACROS_H_

#include "absl/status/status.h"
#include "absl/status/statusor.h"

#define LABTRACE_RETURN_IF_ERROR(expr)                   \
  do {                                                   \
    ::absl::Status labtrace_status_ = (expr);            \
    if (!labtrace_status_.ok()) return labtrace_status_; \
  } while (0)

#define LABTRACE_STATUS_CONCAT_INNER_(a, b) a##b
#define LABTRACE_STATUS_CONCAT_(a, b) LABTRACE_STATUS_CONCAT_INNER_(a, b)

#define LABTRACE_ASSIGN_OR_RETURN(lhs, rexpr) \
  LABTRACE_ASSIGN_OR_RETURN_IMPL_(            \
      LABTRACE_STATUS_CONCAT_(labtrace_statusor_, __LINE__), lhs, rexpr)

#define LABTRACE_ASSIGN_OR_RETURN_IMPL_(statusor, lhs, rexpr) \
  auto statusor = (rexpr);                                    \
  if (!statusor.ok()) return statusor.status();               \
  lhs = std::move(statusor).value()

#endif  // LABTRACE_COMMON_STATUS_MACROS_H_
