// The `labtrace` command line: parses a command and its flags, runs it over
// the selected hosts, prints a table (or JSON with --json) and returns the
// process exit code. main.cc only wires signals and calls RunCli.
//
// Files: args.cc (the command table, flags, help), cli_context.cc (what
// commands share: hosts, clients, fan-out, tables, collection),
// session_commands.cc, artifact_commands.cc, run_command.cc (+ run_summary)
// (the commands), controller/fleet/exit_codes.h (the exit-code policy).
//
// Exit codes (also in --help and README):
//   0    every host did what was asked
//   1    internal error
//   2    usage or configuration error (bad flag, inventory, plan); nothing sent
//   3    some host unreachable or timed out (others done)
//   4    some operation failed (an agent refused; its message is shown)
//   5    data problem (a downloaded file did not match the agent's digest)
//   130  interrupted (Ctrl-C); a lab run still stops its traces and collects
// When several apply, the highest-priority one wins: 130, 5, 4, 3.

#ifndef LABTRACE_CONTROLLER_CLI_CLI_H_
#define LABTRACE_CONTROLLER_CLI_CLI_H_

#include <functional>
#include <iosfwd>

#include "controller/client/agent_client.h"
#include "controller/fleet/exit_codes.h"

namespace labtrace::controller {

struct CliEnvironment {
  std::ostream* out = nullptr;   // Results (tables, JSON).
  std::ostream* err = nullptr;   // Errors, warnings, progress.
  bool err_is_terminal = false;  // Show progress lines.
  // Installs what Ctrl-C should do (called once per command that cares).
  std::function<void(std::function<void()>)> on_interrupt;
  // Client factory; empty means real gRPC clients.
  ClientFactory client_factory;
  // LABTRACE_INVENTORY, if set.
  std::string inventory_env;
};

int RunCli(int argc, const char* const* argv, const CliEnvironment& env);

// The top-level --help text.
std::string ControllerUsage();

}  // namespace labtrace::controller

#endif  // LABTRACE_CONTROLLER_CLI_CLI_H_
