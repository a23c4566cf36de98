// TraceBackend: the seam between the session manager and a tracing tool
// (WPR on Windows, perf on Linux, more later).
//
// A backend turns a profile into a running recording and, at stop, into one
// complete file in the work directory the caller names; the session manager
// then moves that file into the artifact store. Backends hold no locks of the
// session manager: Start/Stop/Cancel may run a process for minutes and are
// called without any lock held, from the gRPC handler thread (or the
// auto-stop thread) that asked.
//
// Ownership: the session manager owns one TraceBackend per backend name and
// one BackendSession per active trace.

#ifndef LABTRACE_AGENT_BACKEND_TRACE_BACKEND_H_
#define LABTRACE_AGENT_BACKEND_TRACE_BACKEND_H_

#include <cstdint>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "agent/config/agent_config.h"
#include "labtrace/v1/agent.pb.h"

namespace labtrace::agent {

struct BackendStartRequest {
  std::string session_name;  // Validated name of the trace operation.
  ProfileSpec profile;       // Catalog entry; its backend is this backend.
  v1::TraceMode mode = v1::TRACE_MODE_FILE;  // FILE or MEMORY (resolved).
  // Private empty directory for this session on the artifact store's
  // volume; the backend writes its output (and any scratch) here.
  std::filesystem::path work_dir;
};

// One recording in progress. Not thread-safe: the session manager calls
// Stop or Cancel once, from one thread; BytesRecorded may be called from
// others (implementations make it safe).
class BackendSession {
 public:
  virtual ~BackendSession() = default;

  // Ends recording and returns the path of the finished trace file inside
  // work_dir. On failure the recording is torn down (cancelled or killed) as
  // far as possible and the error says what happened. A tool that hangs past
  // its timeout is ABORTED (never DEADLINE_EXCEEDED, which clients read as
  // their own call's deadline).
  virtual absl::StatusOr<std::filesystem::path> Stop() = 0;

  // Ends recording without keeping a file.
  virtual absl::Status Cancel() = 0;

  // Bytes written so far where the backend writes as it goes, else -1.
  virtual std::int64_t BytesRecorded() const { return -1; }

  // What recovery needs to find this recording after an agent crash
  // (written to the journal): the WPR instance name, the perf pid.
  virtual std::string RecoveryHandle() const = 0;
};

class TraceBackend {
 public:
  virtual ~TraceBackend() = default;

  // "wpr", "perf".
  virtual absl::string_view name() const = 0;
  // ".etl", ".perf.data".
  virtual absl::string_view file_extension() const = 0;

  // OK if this backend can record here; otherwise FailedPrecondition with
  // the reason (tool missing, no permission). `detail` gets the tool path.
  virtual absl::Status CheckAvailable(std::string* detail) const = 0;

  // Starts recording. Errors carry the tool's own words and a precise code.
  virtual absl::StatusOr<std::unique_ptr<BackendSession>> Start(
      const BackendStartRequest& request) = 0;

  // After an agent restart: ends a recording a previous agent process left
  // behind (`handle` from RecoveryHandle). OK if nothing was running.
  virtual absl::Status CleanupOrphan(const std::string& session_name,
                                     const std::string& handle) = 0;

  // After an agent restart, once the journal's sessions are handled: ends
  // recordings of labtrace's that this backend finds still running although
  // no journal entry named them (the journal was lost, or the agent died
  // before writing it). Returns one line per recording ended, for the log.
  virtual std::vector<std::string> CleanupUnjournaled() { return {}; }
};

}  // namespace labtrace::agent

#endif  // LABTRACE_AGENT_BACKEND_TRACE_BACKEND_H_
