// SessionManager: the agent's core. Owns the named trace sessions, drives
// their backends through the state machine (session_state.h), enforces the
// limits, stores finished files in the ArtifactStore and journals what it is
// responsible for (journal.h) so that a restarted agent can salvage it.
//
// Both adapters (gRPC service, REST gateway) call it; it speaks absl::Status
// and the v1 proto messages, never transport types.
//
// The promises, and where they are kept:
//  - Nothing lost: a stopped trace's file enters the store whole (hashed,
//    flushed, renamed); after a crash Recover() stops recordings that
//    outlived the agent and keeps their files, repairs what a tool could not
//    finish, and keeps trace files found in work dirs, all marked salvaged.
//  - Nothing leaked: a failed stop cancels the recording; if even that
//    fails, the session stays FAILED with its recording pending, and Cancel,
//    StopAll and the next start retry. A tool that ends by itself (perf
//    exits) is noticed at once and the session moves on with its words.
//  - Nothing runs forever: max_duration, leases (a dead-man switch renewed
//    by KeepAlive), max_bytes and the free-space floor are enforced by the
//    watchdog (stop_scheduler.h), which stops and keeps the file, marking
//    why (stop_reason).
//  - The emergency: StopAll stops every session in parallel; Fence does that
//    and refuses new starts until Unfence, surviving restarts.
//
// Threading: every public method may be called from any thread. One mutex
// guards the session tables; it is never held while a backend runs a
// process, while files are hashed or moved, or while the journal is
// written (the journal has its own writer thread). A session being
// started, stopped or cancelled is reserved by its state (STARTING/
// STOPPING/CANCELLING), so exactly one thread drives its backend; others
// that need it wait on the mutex.
//
// Usage:
//   SessionManager manager(options, catalog, std::move(backends), &store);
//   manager.Recover();           // journal of a previous process
//   manager.StartWatchdog();
//   absl::StatusOr<v1::TraceSession> s = manager.Start(request);

#ifndef LABTRACE_AGENT_SESSION_SESSION_MANAGER_H_
#define LABTRACE_AGENT_SESSION_SESSION_MANAGER_H_

#include <atomic>
#include <cstdint>
#include <deque>
#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "agent/backend/trace_backend.h"
#include "agent/config/agent_config.h"
#include "agent/session/journal.h"
#include "agent/session/session_state.h"
#include "agent/session/stop_scheduler.h"
#include "agent/store/artifact_store.h"
#include "labtrace/v1/agent.pb.h"

namespace labtrace::agent {

struct SessionManagerOptions {
  int max_sessions = 8;
  absl::Duration max_duration = absl::Hours(4);
  std::string hostname;
  // Journal file (atomically replaced by a writer thread).
  std::filesystem::path journal_path;
  // The fence's file; empty: the fence is not kept across restarts.
  std::filesystem::path fence_path;
  // Finished sessions remembered for GetTrace / repeated StopTrace.
  std::size_t finished_history = 256;
  std::function<absl::Time()> clock = [] { return absl::Now(); };
  // Called (under the manager's lock: keep it cheap) when a session of a
  // backend is "started", "completed", "failed" or "cancelled" (metrics).
  std::function<void(const std::string& backend, const std::string& event)>
      on_session_event;
  // Disk guard: StartTrace is refused, and running traces are stopped, when
  // free space falls below this (0: off).
  std::uint64_t min_free_bytes = 0;
  // Free bytes of the data dir's volume; empty: the store root's.
  std::function<absl::StatusOr<std::uint64_t>()> free_bytes;
  // Default byte limit per session (0: none); a request may ask for less.
  std::uint64_t max_session_bytes = 0;
  // Longest lease a start may ask for.
  absl::Duration max_lease = absl::Hours(24);
  // How often the watchdog looks (leases, bytes, disk, deadlines).
  absl::Duration watchdog_interval = absl::Seconds(1);
};

class SessionManager {
 public:
  SessionManager(SessionManagerOptions options,
                 std::vector<ProfileSpec> catalog,
                 std::map<std::string, std::unique_ptr<TraceBackend>> backends,
                 ArtifactStore* store);
  // Stops the watchdog. Does not stop sessions: call StopAll first for a
  // graceful shutdown.
  ~SessionManager();
  SessionManager(const SessionManager&) = delete;
  SessionManager& operator=(const SessionManager&) = delete;

  // Reads the journal and the fence a previous agent process left, before
  // anything new starts (and before the store cleans its work dirs):
  //  - each journaled session's recording is salvaged (backend Salvage):
  //    its file is stored, marked salvaged, and the session remembered as
  //    COMPLETED with stop_reason "salvaged"; if nothing could be kept, it is
  //    remembered as FAILED with the reason;
  //  - step commands that outlived the agent are ended;
  //  - recordings no journal entry names are ended (CleanupUnjournaled);
  //  - trace files left in work dirs are stored as salvaged artifacts.
  // Then writes a fresh journal.
  absl::Status Recover();

  // Starts the watchdog (max duration, leases, bytes, disk floor).
  void StartWatchdog();

  absl::StatusOr<v1::TraceSession> Start(const v1::StartTraceRequest& request);
  // After a synchronised Start (answered STARTING): waits until the named
  // trace has started (RUNNING: its session) or not (the reason: CANCELLED
  // if it was withdrawn by a stop, else the backend's error).
  absl::StatusOr<v1::TraceSession> AwaitStarted(const std::string& name);
  absl::StatusOr<v1::StopTraceResponse> Stop(const std::string& name);
  // Also ends the recording of a FAILED session that still holds one.
  absl::StatusOr<v1::TraceSession> Cancel(const std::string& name);
  absl::StatusOr<v1::TraceSession> Get(const std::string& name) const;
  std::vector<v1::TraceSession> List(bool include_finished) const;
  // Stops (or cancels, if discard) every active session in parallel, and
  // retries the cleanup of failed sessions that still hold a recording.
  // `reason` becomes the artifacts' stop_reason ("stop_all", "shutdown").
  v1::StopAllTracesResponse StopAll(bool discard,
                                    const std::string& reason = "stop_all");

  // Renews the leases of the active sessions of a holder or run.
  absl::StatusOr<v1::KeepAliveResponse> KeepAlive(
      const v1::KeepAliveRequest& request);

  // Sets the fence (persisted) and stops every session; `by` is the caller.
  absl::StatusOr<v1::FenceResponse> Fence(const std::string& by,
                                          const std::string& reason);
  absl::StatusOr<v1::FenceState> Unfence(const std::string& by);
  v1::FenceState fence() const;
  // FAILED_PRECONDITION "fenced by ... at ...: reason" while fenced.
  absl::Status CheckNotFenced(absl::string_view operation) const;

  // Step commands (CommandRunner), journaled so a restarted agent ends them.
  void TrackCommand(const std::string& name, std::int64_t pid,
                    const std::string& program);
  void UntrackCommand(std::int64_t pid);

  int active_count() const;
  std::vector<v1::ProfileInfo> Profiles() const;
  std::vector<v1::BackendInfo> Backends() const;
  std::string journal_error() const { return journal_.error(); }
  // Waits until the journal reflects every change so far (tests, shutdown).
  bool FlushJournal(absl::Duration timeout) { return journal_.Flush(timeout); }
  const SessionManagerOptions& options() const { return options_; }

 private:
  struct Session;

  // The one place a state changes. Checks the transition, records end time
  // for final states, moves finished sessions to history, and publishes the
  // journal.
  void TransitionLocked(Session& s, SessionState to, std::string reason = "")
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  v1::TraceSession ToProtoLocked(const Session& s, std::int64_t bytes) const
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  std::shared_ptr<Session> FindFinishedLocked(const std::string& name) const
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Starts the tool of a reserved session (or withdraws it) and moves it on.
  absl::StatusOr<v1::TraceSession> Launch(
      const std::shared_ptr<Session>& session, TraceBackend* backend,
      BackendStartRequest breq,
      const absl::StatusOr<std::filesystem::path>& work_dir, bool withdrawn)
      ABSL_LOCKS_EXCLUDED(mu_);
  // Waits while the named active session is STARTING; a synchronised start
  // still waiting for its instant is withdrawn instead (CANCELLED).
  void AwaitNotStartingLocked(const std::string& name)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // True if the named trace was withdrawn before its synchronised start.
  bool WithdrawnBeforeStart(const std::string& name) const
      ABSL_LOCKS_EXCLUDED(mu_);
  void PublishJournalLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  absl::StatusOr<v1::StopTraceResponse> StopInternal(const std::string& name,
                                                     const std::string& reason);
  // Stores a file of a session as an artifact; the metadata comes from `s`.
  absl::StatusOr<v1::Artifact> StoreFile(const Session& s,
                                         const std::filesystem::path& file,
                                         const std::string& stop_reason,
                                         bool salvaged,
                                         const std::string& salvage_note);
  absl::Status FenceErrorLocked(absl::string_view operation) const
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  std::vector<StopScheduler::Due> FindDue();
  void LoadFence();
  // Stores the trace files that remain in work dirs (no session owns them).
  void SalvageWorkDirs();

  const SessionManagerOptions options_;
  const std::vector<ProfileSpec> catalog_;
  const std::map<std::string, std::unique_ptr<TraceBackend>> backends_;
  ArtifactStore* const store_;
  Journal journal_;

  mutable absl::Mutex mu_;
  std::map<std::string, std::shared_ptr<Session>> active_ ABSL_GUARDED_BY(mu_);
  std::deque<std::shared_ptr<Session>> finished_ ABSL_GUARDED_BY(mu_);
  // FAILED sessions whose recording may still run (a failed stop whose
  // cleanup failed too): retried by Cancel and StopAll, journaled.
  std::map<std::string, std::shared_ptr<Session>> leaked_ ABSL_GUARDED_BY(mu_);
  struct Command {
    std::string name;
    std::string program;
    std::string start_id;
  };
  std::map<std::int64_t, Command> commands_ ABSL_GUARDED_BY(mu_);
  v1::FenceState fence_ ABSL_GUARDED_BY(mu_);
  bool disk_low_logged_ ABSL_GUARDED_BY(mu_) = false;

  std::unique_ptr<StopScheduler> watchdog_;
  // Synchronised starts waiting for their instant (joined on destruction).
  // Finished ones are joined when the next is added.
  struct DeferredStart {
    std::thread thread;
    std::shared_ptr<std::atomic<bool>> done;
  };
  std::vector<DeferredStart> deferred_starts_ ABSL_GUARDED_BY(mu_);
  bool closing_ ABSL_GUARDED_BY(mu_) = false;
};

}  // namespace labtrace::agent

#endif  // LABTRACE_AGENT_SESSION_SESSION_MANAGER_H_
