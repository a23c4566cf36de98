// Logging setup shared by agent and controller binaries: spdlog to stderr,
// level from a flag. Libraries log through spdlog's default logger.

#ifndef LABTRACE_COMMON_LOGGING_H_
#define LABTRACE_COMMON_LOGGING_H_

#include "absl/status/status.h"
#include "absl/strings/string_view.h"

namespace labtrace {

// Sets the default logger's level: trace, debug, info, warn, error, off.
// InvalidArgument for anything else.
absl::Status SetupLogging(absl::string_view level);

}  // namespace labtrace

#endif  // LABTRACE_COMMON_LOGGING_H_
