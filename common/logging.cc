#include "common/logging.h"

#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "common/file_util.h"
#include "spdlog/sinks/rotating_file_sink.h"
#include "spdlog/sinks/stdout_color_sinks.h"
#include "spdlog/spdlog.h"

namespace labtrace {

absl::Status SetupLogging(absl::string_view level,
                          const std::filesystem::path& log_file) {
  spdlog::level::level_enum lvl = spdlog::level::from_str(std::string(level));
  // from_str returns `off` for unknown names; only accept "off" spelled out.
  if (lvl == spdlog::level::off && level != "off") {
    return absl::InvalidArgumentError(
        absl::StrCat("unknown log level \"", level,
                     "\"; use trace, debug, info, warn, error or off"));
  }
  std::vector<spdlog::sink_ptr> sinks;
  sinks.push_back(std::make_shared<spdlog::sinks::stderr_color_sink_mt>());
  if (!log_file.empty()) {
    if (log_file.has_parent_path()) {
      if (absl::Status s = EnsureDirectory(log_file.parent_path()); !s.ok()) {
        return s;
      }
    }
    try {
#ifdef SPDLOG_WCHAR_FILENAMES
      const spdlog::filename_t name = log_file.native();  // Windows: wide.
#else
      const spdlog::filename_t name = PathToUtf8(log_file);
#endif
      sinks.push_back(std::make_shared<spdlog::sinks::rotating_file_sink_mt>(
          name, 10 << 20, 5));
    } catch (const spdlog::spdlog_ex& e) {
      return absl::InvalidArgumentError(absl::StrCat(
          "cannot open log file ", PathToUtf8(log_file), ": ", e.what()));
    }
  }
  spdlog::drop("labtrace");
  auto logger = std::make_shared<spdlog::logger>("labtrace", sinks.begin(),
                                                 sinks.end());
  logger->set_pattern("%Y-%m-%dT%H:%M:%S.%eZ %^%L%$ %v",
                      spdlog::pattern_time_type::utc);
  logger->set_level(lvl);
  logger->flush_on(spdlog::level::info);
  spdlog::register_logger(logger);
  spdlog::set_default_logger(logger);
  return absl::OkStatus();
}

}  // namespace labtrace
