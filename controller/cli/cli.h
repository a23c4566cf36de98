// The `labtrace` command line: parses a command and its flags, runs it over
// the selected hosts, prints a table (or JSON with --json) and returns the
// process exit code. main.cc only wires signals and calls RunCli.
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

namespace labtrace::controller {

inline constexpr int kExitOk = 0;
inline constexpr int kExitInternal = 1;
inline constexpr int kExitUsage = 2;
inline constexpr int kExitUnreachable = 3;
inline constexpr int kExitFailed = 4;
inline constexpr int kExitDataProblem = 5;
inline constexpr int kExitInterrupted = 130;

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
