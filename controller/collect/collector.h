// Collector: downloads the artifacts of many hosts into one folder,
// <dir>/<host>/<file>, in parallel across hosts (one file at a time per
// host), each file resumable and verified (see downloader.h). Prints
// progress to a terminal for long transfers.

#ifndef LABTRACE_CONTROLLER_COLLECT_COLLECTOR_H_
#define LABTRACE_CONTROLLER_COLLECT_COLLECTOR_H_

#include <filesystem>
#include <string>
#include <vector>

#include "controller/fleet/fan_out.h"
#include "labtrace/v1/agent.pb.h"

namespace labtrace::controller {

struct CollectedFile {
  std::string host;
  v1::Artifact artifact;
  std::filesystem::path path;  // Local file (when collected).
  // "collected", "already_present", "failed", "digest_mismatch"; with
  // egress: "uploaded", "already_uploaded", "failed".
  std::string status;
  std::string error;
  // With egress: where the object is (s3://bucket/key), even if it failed.
  std::string object_url;
  bool ok() const {
    return status == "collected" || status == "already_present" ||
           status == "uploaded" || status == "already_uploaded";
  }
};

struct CollectOptions {
  std::filesystem::path dir;  // Files go to dir/<host>/.
  int parallel = 8;
  absl::Duration per_file_timeout = absl::Hours(1);
  bool show_progress = false;  // A progress line on stderr.
};

std::vector<CollectedFile> CollectArtifacts(
    const std::vector<std::pair<Host, std::vector<v1::Artifact>>>& work,
    ClientPool& clients, const CollectOptions& options);

}  // namespace labtrace::controller

#endif  // LABTRACE_CONTROLLER_COLLECT_COLLECTOR_H_
