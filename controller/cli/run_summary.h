// The human summary of a lab run, printed by `labtrace run`: one row per
// step and host with its outcome, exit code, time and files, then the
// warnings, lost hosts, deleted files and where everything is.

#ifndef LABTRACE_CONTROLLER_CLI_RUN_SUMMARY_H_
#define LABTRACE_CONTROLLER_CLI_RUN_SUMMARY_H_

#include <ostream>

#include "controller/plan/plan_runner.h"

namespace labtrace::controller {

void PrintRunSummary(const RunResult& r, std::ostream& out);

}  // namespace labtrace::controller

#endif  // LABTRACE_CONTROLLER_CLI_RUN_SUMMARY_H_
