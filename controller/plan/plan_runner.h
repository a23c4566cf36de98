// PlanRunner: runs a lab plan on a set of hosts: setup steps, test steps,
// cleanup steps, each step its own trace operation on every host, then
// collects this run's artifacts into <out>/<run_id>/<host>/ and writes
// <out>/<run_id>/manifest.json.
//
// Failure rules:
//  - a setup step that fails on any host skips the remaining setup and all
//    tests; cleanup still runs;
//  - a failed test is recorded and the next test runs (unless fail_fast);
//  - a host that becomes unreachable or times out is dropped from the
//    remaining steps and the run skips to cleanup on the others;
//  - an interrupt (Ctrl-C: RequestStop) cancels the calls in flight (agents
//    kill step commands and still keep the traces), skips to cleanup, and
//    the run still collects what exists;
//  - at the end, any trace of this run still active on a host is stopped;
//  - every trace is leased (options.lease) and the lease renewed while the
//    run goes on, so a controller killed with -9 leaves no trace recording
//    for longer than the lease.
// With keep: on-failure, artifacts of passed steps are deleted on the
// agents instead of being collected.
//
// Threading: Run() blocks; RequestStop() may be called from a signal-
// watching thread.

#ifndef LABTRACE_CONTROLLER_PLAN_PLAN_RUNNER_H_
#define LABTRACE_CONTROLLER_PLAN_PLAN_RUNNER_H_

#include <atomic>
#include <filesystem>
#include <functional>
#include <iosfwd>
#include <map>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "controller/client/agent_client.h"
#include "controller/collect/collector.h"
#include "controller/egress/egress.h"
#include "controller/fleet/clock_sync.h"
#include "controller/fleet/fan_out.h"
#include "controller/plan/plan.h"

namespace labtrace::controller {

struct StepHostResult {
  std::string host;
  std::string outcome;  // ok, failed, unreachable, timed_out, skipped
  int exit_code = -1;
  bool timed_out = false;  // The command hit its timeout.
  absl::Duration duration;
  std::string error;        // Why the step failed on this host.
  std::string trace_error;  // Tracing problem (a warning unless strict).
  std::string output_tail;
  std::vector<std::string> artifact_ids;  // Trace and log.
  // When its trace started, on the controller's clock (sync_start: with the
  // host's clock offset applied); InfinitePast if unknown or untraced.
  absl::Time trace_started = absl::InfinitePast();
};

struct StepResult {
  PlanStep step;
  bool passed = false;
  bool skipped = false;
  std::vector<StepHostResult> hosts;
  absl::Time started;
  absl::Time ended;
  // sync_start: the agreed instant (controller clock) and the spread of the
  // traces' actual starts over the hosts (InfinitePast / zero otherwise).
  absl::Time sync_instant = absl::InfinitePast();
  absl::Duration start_spread;
};

struct RunResult {
  std::string run_id;
  std::vector<std::string> command_line;
  std::filesystem::path run_dir;
  absl::Time started;
  absl::Time ended;
  std::vector<StepResult> steps;
  std::vector<CollectedFile> files;
  std::vector<std::string> deleted;  // "host/file" deleted by keep: on-failure.
  std::vector<std::string> lost_hosts;
  std::vector<std::string> warnings;
  bool interrupted = false;
  bool lost_events = false;  // Some collected trace lost events or buffers.
  // sync_start: each host's clock offset (agent minus controller), from the
  // lowest-RTT of a few round trips at the start of the run.
  std::map<std::string, ClockEstimate> clocks;
  // 0 ok, 3 host lost, 4 step failed, 5 data problem, 130 interrupted.
  int exit_code = 0;
};

struct PlanRunOptions {
  std::filesystem::path out_dir;
  std::string run_id;  // Empty: <plan.run>-<UTC stamp>.
  int parallel = 256;
  absl::Duration rpc_timeout = absl::Seconds(60);  // Start/stop/list calls.
  bool show_progress = false;
  // Exit with 5 (data problem) if any collected trace lost events or buffers.
  bool fail_on_lost_events = false;
  std::ostream* log = nullptr;  // Step-by-step lines (stderr in the CLI).
  // Every trace of the run is leased for this long and the lease renewed
  // (KeepAlive) at a third of it while the run goes on; zero: no lease.
  absl::Duration lease = absl::Seconds(60);
  // Where times come from (a fake in tests).
  std::function<absl::Time()> clock = [] { return absl::Now(); };
  // Egress: the agents upload the run's files into this object store
  // (<location>/<run_id>/<host>/<file>) instead of the controller
  // collecting them; the manifest goes there too (and stays in out_dir).
  S3Client* egress = nullptr;
  S3Location egress_location;
  // Recorded in the manifest.
  std::vector<std::string> command_line;
};

class PlanRunner {
 public:
  PlanRunner(Plan plan, std::vector<Host> hosts, ClientPool* clients,
             CallCanceller* canceller, PlanRunOptions options);

  RunResult Run();
  void RequestStop();

 private:
  void RunStep(const PlanStep& step, StepResult* result);
  void RunStepOnAgents(const PlanStep& step, const std::vector<Host>& hosts,
                       StepResult* result);
  void RunStepOnController(const PlanStep& step, const std::vector<Host>& hosts,
                           StepResult* result);
  v1::StartTraceRequest TraceRequest(const PlanStep& step) const;
  // sync_start: estimates the hosts' clocks (once, at the start of the run).
  void EstimateRunClocks();
  // The trace start of `host` in `step` on the controller's clock.
  absl::Time ControllerStart(const std::string& host,
                             const v1::TraceSession& s) const;
  void StopLeftoverTraces();
  void Collect();
  void WriteManifest();
  void Log(const std::string& line);
  void KeepLeases();

  const Plan plan_;
  std::vector<Host> hosts_;  // Still in the run.
  const std::vector<Host> all_hosts_;
  ClientPool* const clients_;
  CallCanceller* const canceller_;
  const PlanRunOptions options_;
  std::atomic<bool> stop_requested_{false};
  RunResult result_;
  absl::Mutex lease_mu_;
  bool leases_done_ ABSL_GUARDED_BY(lease_mu_) = false;
};

inline constexpr int kManifestSchemaVersion = 1;

// Writes manifest.json for a run (also used by tests to check the format).
absl::Status WriteRunManifest(const Plan& plan, const RunResult& result,
                              const std::filesystem::path& path);

}  // namespace labtrace::controller

#endif  // LABTRACE_CONTROLLER_PLAN_PLAN_RUNNER_H_
