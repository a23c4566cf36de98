// Lab plans: a run's setup steps, test steps and cleanup steps, read from
// YAML. Each step is one trace operation (its own file per host), and may run
// a command on the agents or on the controller while it is traced.
//
//   run: ebpf-smoke                # run name; run id = <run>-<UTC stamp>
//   hosts: role=driver             # --hosts expression; default all
//   sync_start: false              # every step's trace starts at one
//                                  #   instant on all hosts (clock offsets
//                                  #   estimated, written to the manifest)
//   defaults:                      # any step field, plus keep / fail_fast
//     profile: cpu
//     mode: file                   # file | memory
//     run_on: agent                # agent | controller
//     timeout: 10m                 # the command's time limit
//     stop_timeout: 10m            # extra time for the trace to stop
//     strict: false                # trace start failure fails the step
//     keep: always                 # always | on-failure (delete passed
//                                  #   steps' artifacts on the agents)
//     fail_fast: false             # stop running tests after a failure
//   setup:   [ {name: setup_ebpf, command: [/bin/sh, -c, "..."]} ]
//   tests:   [ {name: unit_tests, command: [...], profile: sched} ]
//   cleanup: [ {name: cleanup_ebpf, command: [...]} ]
//
// A step without `command` traces for `duration` (default 5s) instead.

#ifndef LABTRACE_CONTROLLER_PLAN_PLAN_H_
#define LABTRACE_CONTROLLER_PLAN_PLAN_H_

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "labtrace/v1/agent.pb.h"

namespace labtrace::controller {

enum class RunOn { kAgent, kController };
enum class KeepPolicy { kAlways, kOnFailure };

struct PlanStep {
  std::string name;
  std::string phase;  // "setup", "test" or "cleanup".
  std::vector<std::string> command;
  RunOn run_on = RunOn::kAgent;
  std::string profile;  // Empty: no trace, only the command.
  v1::TraceMode mode = v1::TRACE_MODE_FILE;
  absl::Duration timeout = absl::Minutes(10);
  absl::Duration stop_timeout = absl::Minutes(10);
  absl::Duration duration = absl::Seconds(5);  // Steps without a command.
  bool strict = false;
};

struct Plan {
  std::string run;
  std::string hosts;  // --hosts expression.
  KeepPolicy keep = KeepPolicy::kAlways;
  bool fail_fast = false;
  bool sync_start = false;
  std::vector<PlanStep> setup;
  std::vector<PlanStep> tests;
  std::vector<PlanStep> cleanup;
  std::string source;
};

absl::StatusOr<Plan> ParsePlan(const std::string& yaml,
                               const std::string& source);
absl::StatusOr<Plan> LoadPlan(const std::string& path);

}  // namespace labtrace::controller

#endif  // LABTRACE_CONTROLLER_PLAN_PLAN_H_
