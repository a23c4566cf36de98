// PerfBackend: records with Linux `perf record -a` as a child process.
//
//   perf record -a -o WORK/<name>.perf.data [--overwrite -m PAGES]
//               [--max-size BYTES] ARGS...
//
// Start waits PerfConfig::start_check for perf to fail early (bad event, no
// permission) and returns perf's own words if it does. One thread per session
// owns the perf process: it notices at once when perf exits on its own
// (ENOSPC, a crash) and reports it with perf's words (SetOnEnded). Stop sends
// SIGINT and waits for perf to finish the file (perf exits 130 then); after
// stop_timeout it is killed and the stop fails. Cancel kills it and removes
// its file. MEMORY mode uses perf's overwrite ring: only the last PAGES pages
// per CPU are written, at stop.
//
// Recovery: perf keeps recording when the agent is killed (it has its own
// process group). Salvage() finds it by pid and start id (never a reused
// pid), stops it with SIGINT so it finishes its file, and keeps that; a file
// perf could not finish is repaired (perf::RepairPerfData).
// CleanupUnjournaled() stops `perf record` processes writing into this
// agent's work dirs that no journal entry names.
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
  // `work_root`: the store's work dirs (<data_dir>/tmp): perf processes
  // writing below it are this agent's.
  PerfBackend(PerfConfig config, std::filesystem::path work_root);

  absl::string_view name() const override { return "perf"; }
  absl::string_view file_extension() const override { return ".perf.data"; }
  absl::Status CheckAvailable(std::string* detail) const override;
  absl::StatusOr<std::unique_ptr<BackendSession>> Start(
      const BackendStartRequest& request) override;
  absl::StatusOr<Salvaged> Salvage(const JournaledRecording& r) override;
  std::vector<std::string> CleanupUnjournaled() override;

  // The `perf record` argv for a request (for tests).
  std::vector<std::string> RecordArgv(const BackendStartRequest& request) const;

 private:
  PerfConfig config_;
  std::filesystem::path work_root_;
};

// OK if tracefs is mounted (mounting it if needed and allowed); otherwise
// FailedPrecondition explaining what to do.
absl::Status EnsureTracefs();

}  // namespace labtrace::agent

#endif  // LABTRACE_AGENT_BACKEND_PERF_BACKEND_H_
