// CliContext: what every `labtrace` command shares: its parsed arguments,
// the inventory and selected hosts, the agent clients, the fan-out options,
// the output streams, the interrupt (Ctrl-C) state, and the helpers that
// turn per-host results into a table or JSON and an exit code.
//
// Threading: commands run on the main thread; Interrupt() comes from the
// stop-request thread (common/console.h) and only touches atomics and the
// mutex-guarded plan runner pointer.

#ifndef LABTRACE_CONTROLLER_CLI_CLI_CONTEXT_H_
#define LABTRACE_CONTROLLER_CLI_CLI_CONTEXT_H_

#include <atomic>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"
#include "controller/cli/args.h"
#include "controller/cli/cli.h"
#include "controller/fleet/exit_codes.h"
#include "controller/fleet/fan_out.h"
#include "controller/inventory/inventory.h"
#include "controller/plan/plan.h"
#include "controller/plan/plan_runner.h"
#include "controller/report/table.h"
#include "nlohmann/json.hpp"

namespace labtrace::controller {

class CliContext {
 public:
  CliContext(const CliEnvironment& env, Args args);

  // Loads the inventory (and the plan, for `run` without --hosts), selects
  // the hosts, makes the clients and installs the interrupt handler.
  absl::Status Setup();

  const Args& args() const { return args_; }
  const CliEnvironment& env() const { return env_; }
  std::ostream& out() const { return *env_.out; }
  std::ostream& err() const { return *env_.err; }
  bool json() const { return json_; }
  const std::vector<Host>& hosts() const { return hosts_; }
  const Inventory& inventory() const { return inventory_; }
  ClientPool& clients() { return *clients_; }
  CallCanceller& canceller() { return canceller_; }
  const FanOutOptions& fan() const { return fan_; }
  const std::optional<Plan>& plan() const { return plan_; }
  void set_plan(Plan plan) { plan_ = std::move(plan); }
  // The command line as typed (manifests and reports record it).
  const std::vector<std::string>& command_line() const { return command_line_; }
  void set_command_line(std::vector<std::string> c) {
    command_line_ = std::move(c);
  }
  bool interrupted() const { return interrupted_.load(); }

  // A plan run in progress receives Ctrl-C as RequestStop (cleanup and
  // collection still run); otherwise Ctrl-C cancels the calls in flight.
  void SetRunner(PlanRunner* runner);

  template <typename T>
  std::vector<HostResult<T>> Fan(
      const std::function<absl::StatusOr<T>(AgentClient&, const Host&,
                                            absl::Time)>& op) {
    return FanOut<T>(hosts_, *clients_, fan_, op);
  }

  // Prints the table (or JSON), every failed host's whole message, a count,
  // and returns the exit code.
  template <typename T>
  int Finish(const std::vector<HostResult<T>>& results, Table& table,
             nlohmann::json& j) {
    std::vector<HostOutcome> outcomes;
    std::vector<std::pair<std::string, std::pair<HostOutcome, absl::Status>>>
        failures;
    for (const auto& r : results) {
      outcomes.push_back(r.outcome);
      if (r.outcome != HostOutcome::kOk) {
        failures.push_back({r.host.name, {r.outcome, r.status}});
      }
    }
    return FinishTable(outcomes, failures, table, j);
  }

  static nlohmann::json HostJson(const Host& h, HostOutcome o,
                                 const absl::Status& s, absl::Duration took);
  // "warning: unit_tests on vm3 (file): 41 events lost; raise ..." for each
  // problem of a trace file.
  void WarnAbout(const std::string& host, const v1::Artifact& a);
  // Downloads artifacts into DIR/<run_id>/<host>/ (DIR/<host>/ without a
  // run id); prints a table; returns the exit code of the collection.
  int CollectInto(
      const std::string& dir,
      const std::vector<std::pair<Host, std::vector<v1::Artifact>>>& work);

 private:
  int FinishTable(
      const std::vector<HostOutcome>& outcomes,
      const std::vector<std::pair<std::string,
                                  std::pair<HostOutcome, absl::Status>>>&
          failures,
      Table& table, nlohmann::json& j);
  void Interrupt();

  const CliEnvironment& env_;
  const Args args_;
  const bool json_;
  Inventory inventory_;
  std::vector<std::string> command_line_;
  std::vector<Host> hosts_;
  std::optional<Plan> plan_;
  FanOutOptions fan_;
  CallCanceller canceller_;
  std::unique_ptr<ClientPool> clients_;
  std::atomic<bool> interrupted_{false};
  absl::Mutex runner_mu_;
  PlanRunner* runner_ ABSL_GUARDED_BY(runner_mu_) = nullptr;
};

// Small formatting helpers shared by the commands.
std::string ShortText(const std::string& s, std::size_t n = 60);
std::string StateText(v1::TraceState s);
std::string ModeText(v1::TraceMode m);
std::string DurationText(const google::protobuf::Duration& d);

}  // namespace labtrace::controller

#endif  // LABTRACE_CONTROLLER_CLI_CLI_CONTEXT_H_
