// PerfBackend: records with Linux `perf record -a` as a child process.
//
//   perf record -a -o WORK/<name>.perf.data [--overwrite -m PAGES] ARGS...
//
// Start waits PerfConfig::start_check for perf to fail early (bad event, no
// permission) and returns perf's own words if it does. Stop sends SIGINT to
// perf's process group and waits for it to finish the file (perf exits 130
// then); after stop_timeout it is killed and the stop fails. Cancel kills it
// and removes its file. MEMORY mode uses perf's overwrite ring: only the
// last PAGES pages per CPU are written, at stop.
//
// Linux only (CMake builds it on Linux). Tracepoint profiles (sched:*) need
// tracefs; Start mounts it at /sys/kernel/tracing if it is missing and says
// clearly why when it cannot.

#ifndef LABTRACE_AGENT_BACKEND_PERF_BACKEND_H_
#define LABTRACE_AGENT_BACKEND_PERF_BACKEND_H_

#include <string>
#include <vector>

#include "agent/backend/trace_backend.h"

namespace labtrace::agent {

class PerfBackend final : public TraceBackend {
 public:
  explicit PerfBackend(PerfConfig config);

  absl::string_view name() const override { return "perf"; }
  absl::string_view file_extension() const override { return ".perf.data"; }
  absl::Status CheckAvailable(std::string* detail) const override;
  absl::StatusOr<std::unique_ptr<BackendSession>> Start(
      const BackendStartRequest& request) override;
  absl::Status CleanupOrphan(const std::string& session_name,
                             const std::string& handle) override;

  // The `perf record` argv for a request (for tests).
  std::vector<std::string> RecordArgv(const BackendStartRequest& request) const;

 private:
  PerfConfig config_;
};

// OK if tracefs is mounted (mounting it if needed and allowed); otherwise
// FailedPrecondition explaining what to do.
absl::Status EnsureTracefs();

}  // namespace labtrace::agent

#endif  // LABTRACE_AGENT_BACKEND_PERF_BACKEND_H_
