// WPR profile files built into the agent, so an agent traces with no profile
// files installed. WriteEmbeddedProfiles() puts them in <data_dir>/profiles
// at start; catalog entries name them as "embedded:labtrace.wprp!Labtrace".

#ifndef LABTRACE_AGENT_BACKEND_EMBEDDED_PROFILES_H_
#define LABTRACE_AGENT_BACKEND_EMBEDDED_PROFILES_H_

#include <filesystem>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"

namespace labtrace::agent {

// The file name and text of the embedded labtrace.wprp: one profile named
// "Labtrace" in two logging modes (File and Memory), so `-filemode` picks
// the file variant and its absence the memory (ring buffer) one.
inline constexpr absl::string_view kEmbeddedWprpName = "labtrace.wprp";
absl::string_view EmbeddedWprpText();

// Writes every embedded profile file into `dir` (created if needed),
// replacing older copies atomically.
absl::Status WriteEmbeddedProfiles(const std::filesystem::path& dir);

}  // namespace labtrace::agent

#endif  // LABTRACE_AGENT_BACKEND_EMBEDDED_PROFILES_H_
