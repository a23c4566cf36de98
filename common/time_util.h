// Time formatting shared by agent and controller. Timestamps on the wire are
// google.protobuf.Timestamp; these helpers format them for file names and
// people, always in UTC.

#ifndef LABTRACE_COMMON_TIME_UTIL_H_
#define LABTRACE_COMMON_TIME_UTIL_H_

#include <string>

#include "absl/time/time.h"

namespace labtrace {

// "20261122_014205": the stamp used in artifact file names.
std::string FileStamp(absl::Time t);

// "2026-11-22T01:42:05.123Z".
std::string Rfc3339(absl::Time t);
// The same with microseconds (instants that line traces up).
std::string Rfc3339Micros(absl::Time t);

// "4h", "1m30s", "250ms": compact, for tables and messages.
std::string HumanDuration(absl::Duration d);

}  // namespace labtrace

#endif  // LABTRACE_COMMON_TIME_UTIL_H_
