// Egress: a run's artifacts go from the agents straight into S3-compatible
// object storage; the controller only coordinates (checks what is there,
// starts multipart uploads, presigns one URL per object or part, completes
// and verifies). Objects are keyed <prefix>/<run_id>/<host>/<file name> and
// carry their sha256 as x-amz-meta-sha256.
//
//   EgressOptions o{.location = *S3Location::Parse("s3://lab/nightly")};
//   std::vector<EgressedFile> done = EgressArtifacts(work, "run-7", clients,
//                                                    s3, o);
//
// Resuming: an object that exists with the artifact's size and sha256 is
// `already_uploaded` and not sent again, so rerunning after a failure (a
// stopped gateway, a lost agent) sends only what is missing.
//
// Faults: a host that cannot be reached fails its files (reported, the
// others go on); an upload that fails is aborted on the store (no orphaned
// parts) and reported with the store's answer; refused credentials and a
// missing bucket are found before any agent is asked (CheckBucket).

#ifndef LABTRACE_CONTROLLER_EGRESS_EGRESS_H_
#define LABTRACE_CONTROLLER_EGRESS_EGRESS_H_

#include <functional>
#include <string>
#include <utility>
#include <vector>

#include "controller/egress/s3.h"
#include "controller/fleet/fan_out.h"
#include "labtrace/v1/agent.pb.h"

namespace labtrace::controller {

struct EgressOptions {
  S3Location location;
  std::uint64_t part_size = 64ull << 20;  // Multipart above this size.
  int parallel = 64;          // Hosts uploading at once.
  int parts_parallel = 4;     // Parts of one file at once (per agent).
  absl::Duration url_expiry = absl::Hours(6);
  absl::Duration per_file_timeout = absl::Hours(2);
  // Called as each file ends (progress lines).
  std::function<void(const struct EgressedFile&)> on_file;
};

struct EgressedFile {
  std::string host;
  v1::Artifact artifact;
  std::string key;     // Object key in location.bucket.
  std::string status;  // "uploaded", "already_uploaded", "failed".
  std::string error;
  int retries = 0;     // PUTs the agent repeated.
  absl::Duration took;
  bool ok() const { return status == "uploaded" || status == "already_uploaded"; }
};

// LABTRACE_EGRESS_PART_SIZE (bytes, at least 5 MiB) if set, else 64 MiB.
std::uint64_t EgressPartSize();

// <run_id>/<host>/<file name> under the location's prefix.
std::string EgressKey(const S3Location& location, const std::string& run_id,
                      const std::string& host, const std::string& file_name);

std::vector<EgressedFile> EgressArtifacts(
    const std::vector<std::pair<Host, std::vector<v1::Artifact>>>& work,
    const std::string& run_id, ClientPool& clients, S3Client& s3,
    const EgressOptions& options);

}  // namespace labtrace::controller

#endif  // LABTRACE_CONTROLLER_EGRESS_EGRESS_H_
