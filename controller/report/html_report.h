// The HTML report of a lab run: one self-contained file (inline CSS and JS,
// no network, no external assets) that opens from a downloaded CI artifact.
// `labtrace run` writes <run_dir>/report.html right after manifest.json, and
// `labtrace report RUN_DIR` rebuilds it; both render from the manifest, so
// the report shows exactly what the manifest says.
//
// What it holds: warnings first; a static summary (counts, failed steps,
// every step's outcome counts, the run's command line, plan, version and
// timing) readable without JavaScript; then, drawn by inline JS from the
// manifest's data embedded as <script type="application/json">: a timeline
// on a <canvas> (one lane per host, a bar per step coloured by phase and
// outcome, hover for times, exit code and error; virtualised, so 1,000
// hosts x 50 steps stay fluid), a paginated steps x hosts table and a
// paginated list of every collected file (size, sha256, lost events,
// problems) linked by its relative path inside the run folder.
//
// Every string from the manifest (host names, errors) is untrusted: the
// static HTML escapes it, the embedded JSON cannot close its <script>
// element, the JS writes only through textContent and DOM properties, and a
// Content-Security-Policy allows only the report's own script (by hash).
//
//   absl::StatusOr<std::filesystem::path> html = WriteHtmlReport(run_dir);
//
// Thread-compatible; no shared state.

#ifndef LABTRACE_CONTROLLER_REPORT_HTML_REPORT_H_
#define LABTRACE_CONTROLLER_REPORT_HTML_REPORT_H_

#include <filesystem>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "nlohmann/json.hpp"

namespace labtrace::controller {

inline constexpr char kReportFileName[] = "report.html";

// <run_dir>/manifest.json, parsed. NotFound (saying what a run folder is)
// if it is missing, InvalidArgument if it is not a JSON object,
// FailedPrecondition if its schema_version is one this build cannot read.
absl::StatusOr<nlohmann::json> ReadRunManifest(
    const std::filesystem::path& run_dir);

// The report document for a parsed manifest (exposed for tests). Tolerates
// missing or mistyped fields (they render as empty).
std::string RenderHtmlReport(const nlohmann::json& manifest);

// Reads <run_dir>/manifest.json and writes <run_dir>/report.html
// atomically. Returns the report's path.
absl::StatusOr<std::filesystem::path> WriteHtmlReport(
    const std::filesystem::path& run_dir);

// Text made safe for HTML element content and quoted attribute values:
// & < > " ' escaped; control characters other than tab and newline, and
// invalid UTF-8, replaced by U+FFFD.
std::string HtmlEscape(absl::string_view s);

// A path relative to the run folder as a relative URL: each segment
// percent-encoded (everything but A-Z a-z 0-9 - . _ ~), '\' read as '/'.
// Empty if the path is empty, absolute, or leaves the folder ("..").
std::string RelativeFileUrl(absl::string_view path);

// JSON text that is safe inside <script type="application/json">: '<', '>'
// and '&' as \u003c \u003e \u0026 (so "</script>" and "<!--" cannot
// appear), U+2028 and U+2029 escaped; invalid UTF-8 replaced.
std::string JsonForScript(const nlohmann::json& j);

}  // namespace labtrace::controller

#endif  // LABTRACE_CONTROLLER_REPORT_HTML_REPORT_H_
