// Downloads one artifact into a folder, resumably and verified:
//   <dir>/<file>.part   grows as chunks arrive (fsynced at the end);
//   rerun: the .part is hashed and the download continues at its size;
//   complete: size and SHA-256 must match the agent's, then rename to <file>.
// An existing complete file with the right digest is not downloaded again.

#ifndef LABTRACE_CONTROLLER_COLLECT_DOWNLOADER_H_
#define LABTRACE_CONTROLLER_COLLECT_DOWNLOADER_H_

#include <cstdint>
#include <filesystem>
#include <functional>

#include "absl/status/statusor.h"
#include "controller/client/agent_client.h"
#include "labtrace/v1/agent.pb.h"

namespace labtrace::controller {

struct DownloadResult {
  std::filesystem::path path;
  std::uint64_t bytes = 0;         // File size.
  std::uint64_t transferred = 0;   // Bytes received in this call.
  std::uint64_t resumed_from = 0;  // Size of the .part we continued.
  bool already_present = false;    // Complete file found; nothing fetched.
};

// Called with (bytes so far, total) as chunks arrive.
using ProgressFn = std::function<void(std::uint64_t, std::uint64_t)>;

// DataLoss when the downloaded bytes do not match the agent's digest (the
// .part is removed so a rerun starts over); InvalidArgument for a file name
// that is not a plain name; the fetch's own error otherwise (the .part
// stays for the next attempt).
absl::StatusOr<DownloadResult> DownloadArtifact(
    AgentClient& client, const v1::Artifact& artifact,
    const std::filesystem::path& dir, absl::Time deadline,
    const ProgressFn& progress = nullptr);

}  // namespace labtrace::controller

#endif  // LABTRACE_CONTROLLER_COLLECT_DOWNLOADER_H_
