// CommandRunner: RunCommand's logic. Runs an allow-listed program on this
// machine under a trace of its own (start trace, run with a timeout, stop
// trace) and keeps the program's output as a ".log" artifact, so a lab step
// on an agent gives one trace file and one log per host.
//
// Threading: Run() blocks for the program's lifetime on the caller's (gRPC
// handler) thread; it holds no lock while the program runs. `cancelled` is
// polled a few times a second: when it turns true the program is killed and
// the trace is still stopped and kept.

#ifndef LABTRACE_AGENT_SESSION_COMMAND_RUNNER_H_
#define LABTRACE_AGENT_SESSION_COMMAND_RUNNER_H_

#include <functional>
#include <string>

#include "absl/status/statusor.h"
#include "agent/config/agent_config.h"
#include "agent/session/session_manager.h"
#include "agent/store/artifact_store.h"
#include "labtrace/v1/agent.pb.h"

namespace labtrace::agent {

class CommandRunner {
 public:
  CommandRunner(ExecConfig config, std::string hostname,
                SessionManager* manager, ArtifactStore* store);

  // FailedPrecondition if exec is disabled, PermissionDenied if argv[0] is
  // not allow-listed, InvalidArgument for a bad trace name or timeout; with
  // `strict`, the trace's start error. Otherwise OK with the outcome (a
  // program that fails is an OK call with a non-zero exit code).
  absl::StatusOr<v1::RunCommandResponse> Run(
      const v1::RunCommandRequest& request,
      const std::function<bool()>& cancelled);

 private:
  const ExecConfig config_;
  const std::string hostname_;
  SessionManager* const manager_;
  ArtifactStore* const store_;
};

}  // namespace labtrace::agent

#endif  // LABTRACE_AGENT_SESSION_COMMAND_RUNNER_H_
