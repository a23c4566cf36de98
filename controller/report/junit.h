// JUnit XML for CI systems, from a run's manifest: one testcase per step and
// host (classname = phase, name = step@host), failures with the agent's
// message and exit code, system-out with the step's log, and each trace
// file attached the ways CI test reporters read: a `[[ATTACHMENT|path]]`
// line in system-out (Jenkins' attachments plugin, Azure DevOps) and
// `<properties><property name="attachment" value="path"/>` (reporters that
// read testcase properties). Paths are relative to the JUnit file's folder
// when the run folder is below it, else absolute.
//
//   WriteJUnit(manifest, run_dir, "results/junit.xml");

#ifndef LABTRACE_CONTROLLER_REPORT_JUNIT_H_
#define LABTRACE_CONTROLLER_REPORT_JUNIT_H_

#include <filesystem>
#include <string>

#include "absl/status/status.h"
#include "nlohmann/json.hpp"

namespace labtrace::controller {

// The document (exposed for tests).
std::string RenderJUnit(const nlohmann::json& manifest,
                        const std::filesystem::path& run_dir,
                        const std::filesystem::path& junit_path);

absl::Status WriteJUnit(const nlohmann::json& manifest,
                        const std::filesystem::path& run_dir,
                        const std::filesystem::path& junit_path);

// Text made safe for XML 1.0 (escaped; characters XML cannot carry, such
// as most control characters, replaced by U+FFFD).
std::string XmlEscape(const std::string& s);

}  // namespace labtrace::controller

#endif  // LABTRACE_CONTROLLER_REPORT_JUNIT_H_
