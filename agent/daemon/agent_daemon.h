// How the labtrace-agent process lives: in the foreground until a stop
// request (Ctrl-C, SIGTERM, console closed, logoff, system shutdown), or as
// the Windows service run by the Service Control Manager; plus the
// `labtrace-agent service install|uninstall` commands. main.cc only picks
// one of these.
//
// Either way a stop request stops every active trace and keeps its file
// before the process exits (AgentServer::Shutdown). A second request while
// that runs means "hurry": the traces not yet being stopped are cancelled,
// the journal is flushed and the process exits at once; stops still in
// progress are left to their tools, and the next start salvages what they
// wrote (exit code 3).

#ifndef LABTRACE_AGENT_DAEMON_AGENT_DAEMON_H_
#define LABTRACE_AGENT_DAEMON_AGENT_DAEMON_H_

#include <condition_variable>
#include <memory>
#include <mutex>
#include <ostream>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/statusor.h"
#include "agent/config/agent_config.h"
#include "agent/service/agent_server.h"

namespace labtrace::agent {

// The Windows service's name (sc start labtrace-agent).
inline constexpr char kServiceName[] = "labtrace-agent";

// One running agent: its server and its shutdown.
//
// Threading: RequestStop may be called from any thread, any number of times;
// Wait from one thread.
class AgentRun {
 public:
  // Starts the server (AgentServer::Start) and writes the port file.
  static absl::StatusOr<std::unique_ptr<AgentRun>> Start(
      const AgentCommandLine& cmd);
  ~AgentRun();
  AgentRun(const AgentRun&) = delete;
  AgentRun& operator=(const AgentRun&) = delete;

  // Returns at once. The first request shuts the server down on a thread of
  // its own: no new calls, then every active trace is stopped and kept.
  // The second one hurries (see above); later ones are logged.
  void RequestStop(const std::string& why);

  // Blocks until the shutdown is complete (false) or hurried (true: exit now,
  // without waiting for the stops in progress).
  bool Wait();

  AgentServer& server() { return *server_; }

 private:
  AgentRun() = default;

  std::unique_ptr<AgentServer> server_;
  std::mutex mu_;
  std::condition_variable cv_;
  int stop_requests_ = 0;  // Guarded by mu_.
  bool done_ = false;      // Guarded by mu_.
  bool hurried_ = false;   // Guarded by mu_.
  std::thread shutdown_thread_;
  std::thread hurry_thread_;
};

// Runs the agent in the foreground until a stop request. Returns the exit
// code: 0 after a clean stop, 1 if it could not start, 3 after a hurried
// stop (the process then ends without running destructors).
int RunAgentInConsole(const AgentCommandLine& cmd);

// `labtrace-agent service ARGS...` (ARGS: what follows "service"):
//   install [flags]  registers the service with these agent flags (checked
//                    now), to start at boot; `sc start labtrace-agent`.
//   uninstall        stops the service (its traces are stopped and kept)
//                    and removes it.
//   run [flags]      what the service runs: connects to the SCM and runs the
//                    agent until the SCM stops it. Logs to --log-file, by
//                    default <data_dir>\agent.log.
// Returns the exit code (2 for usage errors).
int RunServiceCommand(const std::vector<std::string>& args, std::ostream& out,
                      std::ostream& err);

}  // namespace labtrace::agent

#endif  // LABTRACE_AGENT_DAEMON_AGENT_DAEMON_H_
