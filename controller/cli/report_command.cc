// `labtrace report RUN_DIR`: (re)writes RUN_DIR/report.html from the run's
// manifest.json (controller/report/html_report.h), e.g. after copying a run
// folder off a CI machine, or with a newer labtrace.

#include "absl/strings/str_cat.h"
#include "common/file_util.h"
#include "controller/cli/cli_context.h"
#include "controller/cli/commands.h"
#include "controller/fleet/exit_codes.h"
#include "controller/report/html_report.h"

namespace labtrace::controller {

int ReportCommand(CliContext& ctx) {
  std::filesystem::path dir = PathFromUtf8(ctx.args().positional[0]);
  // The manifest itself names its folder too.
  if (dir.filename() == "manifest.json") dir = dir.parent_path();
  if (dir.empty()) dir = ".";
  absl::StatusOr<std::filesystem::path> html = WriteHtmlReport(dir);
  if (!html.ok()) {
    ctx.err() << "labtrace report: " << html.status().message() << "\n";
    // A folder without a manifest is a wrong argument; a broken manifest
    // is a data problem; anything else (cannot write) the environment's.
    if (absl::IsNotFound(html.status())) return kExitUsage;
    if (absl::IsInvalidArgument(html.status()) ||
        absl::IsFailedPrecondition(html.status())) {
      return kExitDataProblem;
    }
    return kExitInternal;
  }
  ctx.out() << "report: " << PathToUtf8(*html) << "\n";
  return kExitOk;
}

}  // namespace labtrace::controller
