// Object storage from the CLI: `run --egress`, `fetch --egress` (agents
// upload, resumable) and `fetch --from` (a run brought down from the store
// and verified against its manifest).

#ifndef LABTRACE_CONTROLLER_CLI_EGRESS_COMMANDS_H_
#define LABTRACE_CONTROLLER_CLI_EGRESS_COMMANDS_H_

#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "controller/cli/cli_context.h"
#include "controller/egress/s3.h"

namespace labtrace::controller {

// An S3 client for `url` (s3://bucket/prefix; empty: the inventory's
// egress.url) with credentials from the usual places, after checking that
// the bucket is there and the credentials are accepted.
absl::StatusOr<std::unique_ptr<S3Client>> OpenEgress(CliContext& ctx,
                                                     std::string url,
                                                     S3Location* location);

// fetch --egress: the listed artifacts go from the agents into the store;
// the run's manifest in the store (if any) is updated.
int FetchToObjectStore(
    CliContext& ctx,
    const std::vector<std::pair<Host, std::vector<v1::Artifact>>>& work,
    const std::string& run_id, int exit_code);

// fetch --from s3://bucket/prefix/<run_id> --out DIR.
int FetchFromObjectStore(CliContext& ctx);

}  // namespace labtrace::controller

#endif  // LABTRACE_CONTROLLER_CLI_EGRESS_COMMANDS_H_
