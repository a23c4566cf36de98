// Validation of the names clients send: trace operation names, run ids,
// phases, label keys/values and artifact ids. Names become parts of file
// names, so the rules exclude anything path-like.
//
//   if (absl::Status s = ValidateTraceName(req.name()); !s.ok()) return s;

#ifndef LABTRACE_COMMON_NAMES_H_
#define LABTRACE_COMMON_NAMES_H_

#include "absl/status/status.h"
#include "absl/strings/string_view.h"

namespace labtrace {

// Longest trace name: 64 characters.
inline constexpr std::size_t kMaxNameLength = 64;

// True if `name` matches [A-Za-z0-9][A-Za-z0-9._-]{0,63}.
bool IsValidName(absl::string_view name);

// InvalidArgument with a message naming `what` (e.g. "trace name") and
// quoting the value, unless IsValidName(value).
absl::Status ValidateName(absl::string_view what, absl::string_view value);

// Same rule, but an empty value is allowed (optional fields: run_id, phase).
absl::Status ValidateOptionalName(absl::string_view what,
                                  absl::string_view value);

// Label values: up to 256 printable ASCII characters (they never become paths).
absl::Status ValidateLabelValue(absl::string_view key, absl::string_view value);

// Renders a client-supplied string safely for an error message: printable
// ASCII kept, everything else escaped, long values cut.
std::string QuoteForMessage(absl::string_view value);

}  // namespace labtrace

#endif  // LABTRACE_COMMON_NAMES_H_
