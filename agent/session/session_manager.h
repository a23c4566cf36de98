// SessionManager: the agent's core. Owns the named trace sessions, drives
// their backends through the state machine (session_state.h), enforces the
// limits, auto-stops sessions past their max duration, stores finished files
// in the ArtifactStore and journals every transition for crash recovery.
//
// Both adapters (gRPC service, later REST) call it; it speaks absl::Status
// and the v1 proto messages, never transport types.
//
// Threading: every public method may be called from any thread. One mutex
// guards the session tables; it is never held while a backend runs a
// process, while files are hashed or moved, or while the journal is
// written. A session being started, stopped or cancelled is reserved by its
// state (STARTING/STOPPING/CANCELLING), so exactly one thread drives its
// backend; others that need it wait on the mutex's condition.
//
// Usage:
//   SessionManager manager(options, catalog, std::move(backends), &store);
//   manager.Recover();           // journal of a previous process
//   manager.StartAutoStopThread();
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
#include "agent/session/session_state.h"
#include "agent/store/artifact_store.h"
#include "labtrace/v1/agent.pb.h"

namespace labtrace::agent {

struct SessionManagerOptions {
  int max_sessions = 8;
  absl::Duration max_duration = absl::Hours(4);
  std::string hostname;
  // Journal file (atomically replaced on every transition).
  std::filesystem::path journal_path;
  // Finished sessions remembered for GetTrace / repeated StopTrace.
  std::size_t finished_history = 256;
  std::function<absl::Time()> clock = [] { return absl::Now(); };
  // Called (under the manager's lock: keep it cheap) when a session of a
  // backend is "started", "completed", "failed" or "cancelled" (metrics).
  std::function<void(const std::string& backend, const std::string& event)>
      on_session_event;
};

class SessionManager {
 public:
  SessionManager(SessionManagerOptions options,
                 std::vector<ProfileSpec> catalog,
                 std::map<std::string, std::unique_ptr<TraceBackend>> backends,
                 ArtifactStore* store);
  // Stops the auto-stop thread. Does not stop sessions: call StopAll first
  // for a graceful shutdown.
  ~SessionManager();
  SessionManager(const SessionManager&) = delete;
  SessionManager& operator=(const SessionManager&) = delete;

  // Reads the journal a previous agent process left: every session it lists
  // was active when that process died. Each one's backend recording is ended
  // (CleanupOrphan) and the session is remembered as FAILED with the reason.
  // Then writes a fresh journal.
  absl::Status Recover();

  // Starts the thread that stops sessions past their max duration.
  void StartAutoStopThread();

  absl::StatusOr<v1::TraceSession> Start(const v1::StartTraceRequest& request);
  absl::StatusOr<v1::StopTraceResponse> Stop(const std::string& name);
  absl::StatusOr<v1::TraceSession> Cancel(const std::string& name);
  absl::StatusOr<v1::TraceSession> Get(const std::string& name) const;
  std::vector<v1::TraceSession> List(bool include_finished) const;
  // Stops (or cancels, if discard) every active session in parallel.
  v1::StopAllTracesResponse StopAll(bool discard);

  int active_count() const;
  std::vector<v1::ProfileInfo> Profiles() const;
  std::vector<v1::BackendInfo> Backends() const;
  const SessionManagerOptions& options() const { return options_; }

 private:
  struct Session;

  // The one place a state changes. Checks the transition, records end time
  // for final states, moves finished sessions to history, and snapshots the
  // journal (written by the caller after unlocking: WriteJournal).
  void TransitionLocked(Session& s, SessionState to, std::string reason = "")
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  v1::TraceSession ToProtoLocked(const Session& s, std::int64_t bytes) const
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  std::shared_ptr<Session> FindFinishedLocked(const std::string& name) const
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Waits while the named active session is STARTING.
  void AwaitNotStartingLocked(const std::string& name)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  std::string JournalSnapshotLocked(std::uint64_t* seq)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void WriteJournal(std::uint64_t seq, const std::string& contents);
  absl::StatusOr<v1::StopTraceResponse> StopInternal(const std::string& name,
                                                     bool auto_stop);
  absl::Status ValidateStart(const v1::StartTraceRequest& request,
                             const ProfileSpec** profile,
                             TraceBackend** backend,
                             absl::Duration* max_duration) const;
  void AutoStopLoop();

  const SessionManagerOptions options_;
  const std::vector<ProfileSpec> catalog_;
  const std::map<std::string, std::unique_ptr<TraceBackend>> backends_;
  ArtifactStore* const store_;

  mutable absl::Mutex mu_;
  std::map<std::string, std::shared_ptr<Session>> active_ ABSL_GUARDED_BY(mu_);
  std::deque<std::shared_ptr<Session>> finished_ ABSL_GUARDED_BY(mu_);
  std::uint64_t journal_seq_ ABSL_GUARDED_BY(mu_) = 0;
  bool shutting_down_ ABSL_GUARDED_BY(mu_) = false;
  absl::CondVar auto_stop_cv_;

  absl::Mutex journal_mu_ ABSL_ACQUIRED_AFTER(mu_);
  std::uint64_t journal_written_seq_ ABSL_GUARDED_BY(journal_mu_) = 0;

  std::thread auto_stop_thread_;
  struct Worker {
    std::thread thread;
    std::shared_ptr<std::atomic<bool>> done;
  };
  absl::Mutex workers_mu_;
  std::vector<Worker> auto_stop_workers_ ABSL_GUARDED_BY(workers_mu_);
};

}  // namespace labtrace::agent

#endif  // LABTRACE_AGENT_SESSION_SESSION_MANAGER_H_
