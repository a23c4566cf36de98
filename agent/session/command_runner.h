// CommandRunner: RunCommand's logic. Runs an allow-listed program on this
// machine under a trace of its own (start trace, run with a timeout, stop
// trace) and keeps the program's output as a ".log" artifact, so a lab step
// on an agent gives one trace file and one log per host.
//
// Output goes straight to the log file as it arrives (bounded memory: only a
// tail stays in memory), cut at exec.max_output_bytes with a note.
//
// Threading: Run() blocks for the program's lifetime on the caller's thread
// (the agent's "commands" pool); it holds no lock while the program runs.
// `cancelled` is polled a few times a second: when it turns true the program
// is killed and the trace is still stopped and kept. KillAll() (an emergency
// stop-all) may be called from any thread: it ends every running program the
// same way and returns once they are gone.
//
// Faults: every running program is in the session journal (pid and start
// id): after a kill -9 of the agent, the restarted agent ends the ones that
// outlived it (SessionManager::Recover). On Windows they die with the agent
// anyway (job object).

#ifndef LABTRACE_AGENT_SESSION_COMMAND_RUNNER_H_
#define LABTRACE_AGENT_SESSION_COMMAND_RUNNER_H_

#include <atomic>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "agent/config/agent_config.h"
#include "agent/session/session_manager.h"
#include "agent/store/artifact_store.h"
#include "labtrace/v1/agent.pb.h"

namespace labtrace::agent {

class CommandRunner {
 public:
  CommandRunner(ExecConfig config, std::string hostname,
                SessionManager* manager, ArtifactStore* store,
                std::function<absl::Time()> clock = [] { return absl::Now(); });

  // FailedPrecondition if exec is disabled, PermissionDenied if argv[0] is
  // not allow-listed, InvalidArgument for a bad trace name or timeout; with
  // `strict`, the trace's start error. Otherwise OK with the outcome (a
  // program that fails is an OK call with a non-zero exit code).
  // `on_poll`, if set, is called with the log file's path every poll while
  // the program runs (the file grows as output arrives; it is flushed with
  // every piece), from this thread; it must not block for long. The log is
  // moved into the store once the program has ended.
  absl::StatusOr<v1::RunCommandResponse> Run(
      const v1::RunCommandRequest& request,
      const std::function<bool()>& cancelled,
      const std::function<void(const std::filesystem::path&)>& on_poll = {});

  // Ends every running program (killed, its log kept, its trace stopped by
  // its own Run) and returns which; waits up to `wait` for them to be gone.
  std::vector<v1::StoppedCommand> KillAll(const std::string& why,
                                          absl::Duration wait = absl::Seconds(10));

  int running() const;

 private:
  struct Running {
    std::string name;
    std::string program;
    std::int64_t pid = 0;
    std::atomic<bool> kill{false};
    std::string kill_reason;  // Set before `kill`.
    bool ended = false;       // The program is gone (guarded by mu_).
  };

  const ExecConfig config_;
  const std::string hostname_;
  SessionManager* const manager_;
  ArtifactStore* const store_;
  const std::function<absl::Time()> clock_;

  mutable absl::Mutex mu_;
  std::map<Running*, std::shared_ptr<Running>> running_ ABSL_GUARDED_BY(mu_);
};

}  // namespace labtrace::agent

#endif  // LABTRACE_AGENT_SESSION_COMMAND_RUNNER_H_
