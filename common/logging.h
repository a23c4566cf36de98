// Logging setup shared by agent and controller binaries: spdlog to stderr
// and, optionally, to a size-rotated file (what a Windows service, which has
// no console, writes to). Libraries log through spdlog's default logger.

#ifndef LABTRACE_COMMON_LOGGING_H_
#define LABTRACE_COMMON_LOGGING_H_

#include <filesystem>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"

namespace labtrace {

// Sets the default logger's level: trace, debug, info, warn, error, off.
// InvalidArgument for anything else. With `log_file`, also logs there
// (rotated at 10 MiB, 5 files kept); an unwritable file is an error.
absl::Status SetupLogging(absl::string_view level,
                          const std::filesystem::path& log_file = {});

}  // namespace labtrace

#endif  // LABTRACE_COMMON_LOGGING_H_
