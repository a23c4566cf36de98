// The controller's exit codes and how per-host outcomes combine into one.
// Shared by every command (controller/cli) and the lab-plan runner.
//
//   0    every host did what was asked
//   1    internal error
//   2    usage or configuration error (bad flag, inventory, plan); nothing sent
//   3    some host unreachable or timed out (others done)
//   4    some operation failed (an agent refused; its message is shown)
//   5    data problem (a downloaded file did not match the agent's digest,
//        or lost events with --fail-on-lost-events)
//   130  interrupted (Ctrl-C); a lab run still stops its traces and collects
// When several apply, the highest-priority one wins: 130, 5, 4, 3.

#ifndef LABTRACE_CONTROLLER_FLEET_EXIT_CODES_H_
#define LABTRACE_CONTROLLER_FLEET_EXIT_CODES_H_

#include <vector>

#include "controller/fleet/fan_out.h"

namespace labtrace::controller {

inline constexpr int kExitOk = 0;
inline constexpr int kExitInternal = 1;
inline constexpr int kExitUsage = 2;
inline constexpr int kExitUnreachable = 3;
inline constexpr int kExitFailed = 4;
inline constexpr int kExitDataProblem = 5;
inline constexpr int kExitInterrupted = 130;

// The more serious of two exit codes (130 > 5 > 4 > 3 > others > 0).
int WorstExit(int a, int b);

// The exit code of a set of per-host outcomes: 4 if any failed, else 3 if
// any was unreachable or timed out, else 0.
int ExitFor(const std::vector<HostOutcome>& outcomes);

}  // namespace labtrace::controller

#endif  // LABTRACE_CONTROLLER_FLEET_EXIT_CODES_H_
