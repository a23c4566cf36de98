#include "common/logging.h"

#include <string>

#include "absl/strings/str_cat.h"
#include "spdlog/sinks/stdout_color_sinks.h"
#include "spdlog/spdlog.h"

namespace labtrace {

absl::Status SetupLogging(absl::string_view level) {
  spdlog::level::level_enum lvl = spdlog::level::from_str(std::string(level));
  // from_str returns `off` for unknown names; only accept "off" spelled out.
  if (lvl == spdlog::level::off && level != "off") {
    return absl::InvalidArgumentError(
        absl::StrCat("unknown log level \"", level,
                     "\"; use trace, debug, info, warn, error or off"));
  }
  auto logger = spdlog::get("labtrace");
  if (logger == nullptr) logger = spdlog::stderr_color_mt("labtrace");
  logger->set_pattern("%Y-%m-%dT%H:%M:%S.%eZ %^%L%$ %v",
                      spdlog::pattern_time_type::utc);
  logger->set_level(lvl);
  spdlog::set_default_logger(logger);
  return absl::OkStatus();
}

}  // namespace labtrace
