// TraceBackend: the seam between the session manager and a tracing tool
// (WPR on Windows, perf on Linux, more later).
//
// A backend turns a profile into a running recording and, at stop, into one
// complete file in the work directory the caller names; the session manager
// then moves that file into the artifact store. Backends hold no locks of the
// session manager: Start/Stop/Cancel may run a process for minutes and are
// called without any lock held, from the thread that asked.
//
// Nothing lost, nothing leaked:
//  - A failed Stop tears the recording down (cancel, kill) as far as it can;
//    if even that fails, StillRecording() says so and the session manager
//    keeps trying (Cancel, StopAll, and the next agent start).
//  - A recording that ends on its own (perf exits) is reported at once
//    through the callback given to SetOnEnded.
//  - After a crash, Salvage() finds a journaled recording: one still running
//    is stopped properly and its file kept; one that ended leaves what it
//    wrote, repaired if need be.
//
// Ownership: the session manager owns one TraceBackend per backend name and
// one BackendSession per active trace.

#ifndef LABTRACE_AGENT_BACKEND_TRACE_BACKEND_H_
#define LABTRACE_AGENT_BACKEND_TRACE_BACKEND_H_

#include <cstdint>
#include <filesystem>
#include <functional>
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
  // Stop recording at about this many bytes (0: no limit), where the tool
  // can enforce it (perf --max-size); the session manager's watchdog stops
  // the others.
  std::uint64_t max_bytes = 0;
};

// One recording in progress. Stop or Cancel is called once, from one thread;
// BytesRecorded and StillRecording may be called from others.
class BackendSession {
 public:
  virtual ~BackendSession() = default;

  // Ends recording and returns the path of the finished trace file inside
  // work_dir. On failure the recording is torn down (cancelled or killed) as
  // far as possible and the error says what happened. A tool that hangs past
  // its timeout is ABORTED (never DEADLINE_EXCEEDED, which clients read as
  // their own call's deadline).
  virtual absl::StatusOr<std::filesystem::path> Stop() = 0;

  // Ends recording without keeping a file. May be called again after a
  // failed Stop or Cancel, while StillRecording().
  virtual absl::Status Cancel() = 0;

  // Bytes written so far where the backend writes as it goes, else -1.
  virtual std::int64_t BytesRecorded() const { return -1; }

  // What recovery needs to find this recording after an agent crash
  // (written to the journal): the WPR instance name, perf's pid.
  virtual std::string RecoveryHandle() const = 0;

  // True if, after a failed Stop or Cancel, the recording may still go on.
  virtual bool StillRecording() const { return false; }

  // `on_ended` is called at most once, from a backend thread, if the
  // recording ends without being asked to (the tool exited or crashed);
  // `why` has the tool's own words. Set right after Start.
  virtual void SetOnEnded(std::function<void(const std::string& why)> on_ended) {}
};

// A recording a previous agent process was responsible for, from its journal.
struct JournaledRecording {
  std::string session_name;
  std::string handle;               // RecoveryHandle() of that session.
  std::filesystem::path work_dir;   // Where it wrote; may be empty.
  v1::TraceMode mode = v1::TRACE_MODE_FILE;
  bool was_stopping = false;  // That agent was stopping it when it died.
};

// A complete file recovered from such a recording, and how it was obtained.
struct Salvaged {
  std::filesystem::path file;
  std::string note;  // "stopped the WPR instance that outlived the agent".
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

  // After an agent restart: a journaled recording. If it still runs, it is
  // stopped properly (into its work dir) and the file returned; if it has
  // ended, the complete file it left is returned (repaired if the format
  // allows). Otherwise whatever still runs is ended and the error says why
  // nothing could be kept.
  virtual absl::StatusOr<Salvaged> Salvage(const JournaledRecording& r) = 0;

  // After an agent restart, once the journal's recordings are handled: ends
  // recordings of labtrace's that this backend finds still running although
  // no journal entry named them (the journal was lost, or the agent died
  // before writing it); their files stay in the work dirs, where the store
  // finds them. Returns one line per recording ended, for the log.
  virtual std::vector<std::string> CleanupUnjournaled() { return {}; }
};

}  // namespace labtrace::agent

#endif  // LABTRACE_AGENT_BACKEND_TRACE_BACKEND_H_
