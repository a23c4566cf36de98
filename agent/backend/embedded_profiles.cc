#include "agent/backend/embedded_profiles.h"

#include "common/file_util.h"
#include "common/status_macros.h"

namespace labtrace::agent {

absl::string_view EmbeddedWprpText() {
  // agent/backend/labtrace.wprp, embedded at build time (CMake reads it into
  // labtrace_wprp.inc). WPR profile schema:
  // https://learn.microsoft.com/windows-hardware/test/wpt/ (WPRControlProfiles).
  // Profile Ids are Name.DetailLevel.LoggingMode.
  return
#include "labtrace_wprp.inc"
      ;
}

absl::Status WriteEmbeddedProfiles(const std::filesystem::path& dir) {
  LABTRACE_RETURN_IF_ERROR(EnsureDirectory(dir));
  return WriteFileAtomically(dir / std::string(kEmbeddedWprpName),
                             EmbeddedWprpText());
}

}  // namespace labtrace::agent
