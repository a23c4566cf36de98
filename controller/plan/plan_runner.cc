#include "controller/plan/plan_runner.h"

#include <algorithm>
#include <chrono>
#include <map>
#include <ostream>
#include <set>
#include <thread>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "common/file_util.h"
#include "common/proto_time.h"
#include "common/subprocess.h"
#include "common/time_util.h"
#include "common/trace_summary.h"
#include "controller/fleet/exit_codes.h"
#include "controller/report/proto_json.h"
#include "controller/report/provider_warning.h"
#include "google/protobuf/util/json_util.h"
#include "nlohmann/json.hpp"

namespace labtrace::controller {
namespace {

std::string Oneline(std::string s) {
  for (char& c : s) {
    if (c == '\n' || c == '\r') c = ' ';
  }
  return s;
}

}  // namespace

PlanRunner::PlanRunner(Plan plan, std::vector<Host> hosts, ClientPool* clients,
                       CallCanceller* canceller, PlanRunOptions options)
    : plan_(std::move(plan)),
      hosts_(hosts),
      all_hosts_(std::move(hosts)),
      clients_(clients),
      canceller_(canceller),
      options_(std::move(options)) {}

void PlanRunner::RequestStop() {
  stop_requested_ = true;
  if (canceller_ != nullptr) canceller_->CancelAll();
}

void PlanRunner::Log(const std::string& line) {
  if (options_.log != nullptr) *options_.log << line << std::endl;
}

v1::StartTraceRequest PlanRunner::TraceRequest(const PlanStep& step) const {
  v1::StartTraceRequest req;
  req.set_name(step.name);
  req.set_profile(step.profile);
  req.set_mode(step.mode);
  req.set_run_id(result_.run_id);
  req.set_phase(step.phase);
  (*req.mutable_labels())["plan"] = plan_.run;
  // The trace outlives the command by at most its stop; the agent's own max
  // duration still applies.
  *req.mutable_max_duration() =
      ToProtoDuration(step.timeout + step.stop_timeout);
  if (options_.lease > absl::ZeroDuration()) {
    // A dead-man switch: if this controller dies, the agents stop the run's
    // traces when the lease runs out (KeepLeases renews it meanwhile).
    *req.mutable_lease() = ToProtoDuration(options_.lease);
    req.set_lease_holder(result_.run_id);
  }
  return req;
}

void PlanRunner::EstimateRunClocks() {
  FanOutOptions fo;
  fo.parallel = options_.parallel;
  fo.per_host_timeout = options_.rpc_timeout;
  fo.clock = options_.clock;
  absl::Duration lo = absl::InfiniteDuration(), hi = -absl::InfiniteDuration();
  for (auto& r : EstimateClocks(hosts_, *clients_, fo)) {
    if (r.outcome == HostOutcome::kOk) {
      result_.clocks[r.host.name] = r.value;
      lo = std::min(lo, r.value.offset);
      hi = std::max(hi, r.value.offset);
    } else {
      const std::string w = absl::StrCat(
          r.host.name, ": clock offset not estimated (", r.status.message(),
          "); its traces are not started in sync");
      result_.warnings.push_back(w);
      Log(absl::StrCat("  warning: ", w));
    }
  }
  if (!result_.clocks.empty()) {
    Log(absl::StrFormat(
        "  clocks: %d host(s), offsets %+.2f to %+.2f ms against this "
        "controller",
        result_.clocks.size(), absl::ToDoubleMilliseconds(lo),
        absl::ToDoubleMilliseconds(hi)));
  }
}

absl::Time PlanRunner::ControllerStart(const std::string& host,
                                       const v1::TraceSession& s) const {
  if (!s.has_start_time()) return absl::InfinitePast();
  const absl::Time t = FromProtoTimestamp(s.start_time());
  auto it = result_.clocks.find(host);
  return it == result_.clocks.end() ? t : ControllerTime(t, it->second);
}

// The spread of a step's trace starts over its hosts.
static absl::Duration StartSpread(const std::vector<StepHostResult>& hosts) {
  absl::Time first = absl::InfiniteFuture(), last = absl::InfinitePast();
  for (const StepHostResult& h : hosts) {
    if (h.trace_started == absl::InfinitePast()) continue;
    first = std::min(first, h.trace_started);
    last = std::max(last, h.trace_started);
  }
  return last >= first ? last - first : absl::ZeroDuration();
}

void PlanRunner::KeepLeases() {
  // Renews at a third of the lease: two renewals may fail before a trace
  // is stopped for want of one.
  const absl::Duration every = options_.lease / 3;
  absl::MutexLock lock(&lease_mu_);
  while (!leases_done_) {
    auto done = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(lease_mu_) {
      return leases_done_;
    };
    if (lease_mu_.AwaitWithTimeout(absl::Condition(&done), every)) break;
    std::vector<Host> hosts = all_hosts_;
    lease_mu_.Unlock();
    v1::KeepAliveRequest k;
    k.set_run_id(result_.run_id);
    FanOutOptions fo;
    fo.parallel = options_.parallel;
    fo.per_host_timeout = std::max(every / 2, absl::Seconds(1));
    auto results = FanOut<v1::KeepAliveResponse>(
        hosts, *clients_, fo, [&k](AgentClient& c, const Host&, absl::Time d) {
          return c.KeepAlive(k, d);
        });
    for (const auto& r : results) {
      if (r.outcome != HostOutcome::kOk) {
        Log(absl::StrCat("  warning: lease renewal on ", r.host.name, ": ",
                         HostOutcomeName(r.outcome), ": ", r.status.message()));
      }
    }
    lease_mu_.Lock();
  }
}

RunResult PlanRunner::Run() {
  result_.started = options_.clock();
  result_.run_id =
      options_.run_id.empty()
          ? absl::StrCat(plan_.run, "-", FileStamp(result_.started))
          : options_.run_id;
  result_.run_dir = options_.out_dir / result_.run_id;
  result_.command_line = options_.command_line;
  std::thread lease_keeper;
  if (options_.lease > absl::ZeroDuration()) {
    lease_keeper = std::thread([this] { KeepLeases(); });
  }
  Log(absl::StrCat("run ", result_.run_id, " on ", hosts_.size(), " host(s): ",
                   plan_.setup.size(), " setup, ", plan_.tests.size(),
                   " test, ", plan_.cleanup.size(), " cleanup step(s)"));
  if (plan_.sync_start) EstimateRunClocks();

  bool abort_to_cleanup = false;
  auto run_phase = [&](const std::vector<PlanStep>& steps, bool is_cleanup) {
    for (const PlanStep& step : steps) {
      StepResult r;
      r.step = step;
      const bool skip = !is_cleanup && (abort_to_cleanup || stop_requested_);
      if (skip || hosts_.empty()) {
        r.skipped = true;
        Log(absl::StrCat("  skip ", step.phase, " ", step.name));
      } else {
        RunStep(step, &r);
        if (!r.passed && !is_cleanup) {
          if (step.phase == "setup" || plan_.fail_fast ||
              !result_.lost_hosts.empty()) {
            abort_to_cleanup = true;
          }
        }
        if (!result_.lost_hosts.empty()) abort_to_cleanup = true;
      }
      result_.steps.push_back(std::move(r));
    }
  };
  run_phase(plan_.setup, false);
  run_phase(plan_.tests, false);
  // Cleanup always runs (on the hosts still with us), even after Ctrl-C;
  // its calls must not inherit the cancellation.
  if (stop_requested_ && canceller_ != nullptr) canceller_->Reset();
  run_phase(plan_.cleanup, true);
  result_.interrupted = stop_requested_;

  StopLeftoverTraces();
  if (lease_keeper.joinable()) {
    {
      absl::MutexLock lock(&lease_mu_);
      leases_done_ = true;
    }
    lease_keeper.join();
  }
  Collect();
  result_.ended = options_.clock();

  // Exit code: the worst of interrupted > data problem > failed > lost host.
  bool failed = false;
  for (const StepResult& s : result_.steps) {
    for (const StepHostResult& h : s.hosts) failed |= h.outcome == "failed";
  }
  bool data_problem = false;
  for (const CollectedFile& f : result_.files) {
    data_problem |= f.status == "digest_mismatch";
    failed |= f.status == "failed";
    const v1::TraceSummary& sum = f.artifact.summary();
    if (sum.events_lost() > 0 || sum.buffers_lost() > 0)
      result_.lost_events = true;
    for (const std::string& w : SummaryWarnings(sum)) {
      result_.warnings.push_back(
          absl::StrCat(f.artifact.session_name(), " on ", f.host, ": ", w));
    }
    if (std::optional<std::string> w = ProviderWarning(sum)) {
      result_.warnings.push_back(
          absl::StrCat(f.artifact.session_name(), " on ", f.host, ": ", *w));
    }
  }
  if (options_.fail_on_lost_events && result_.lost_events) data_problem = true;
  int code = kExitOk;
  if (result_.interrupted) code = WorstExit(code, kExitInterrupted);
  if (data_problem) code = WorstExit(code, kExitDataProblem);
  if (failed) code = WorstExit(code, kExitFailed);
  if (!result_.lost_hosts.empty()) code = WorstExit(code, kExitUnreachable);
  result_.exit_code = code;
  WriteManifest();
  return result_;
}

void PlanRunner::RunStep(const PlanStep& step, StepResult* result) {
  result->started = options_.clock();
  Log(absl::StrCat(
      "  ", step.phase, " ", step.name, ": ",
      step.command.empty()
          ? absl::StrCat("trace for ", HumanDuration(step.duration))
          : absl::StrCat(
                step.run_on == RunOn::kAgent ? "on agents" : "on controller",
                ": ", absl::StrJoin(step.command, " ")),
      step.profile.empty() ? ""
                           : absl::StrCat(" [profile ", step.profile, "]")));
  const std::vector<Host> hosts = hosts_;
  if (step.run_on == RunOn::kAgent && !step.command.empty()) {
    RunStepOnAgents(step, hosts, result);
  } else {
    RunStepOnController(step, hosts, result);
  }
  result->ended = options_.clock();
  result->start_spread = StartSpread(result->hosts);
  if (result->sync_instant != absl::InfinitePast()) {
    Log(absl::StrFormat("    synchronised start: spread %.2f ms over %d host(s)",
                        absl::ToDoubleMilliseconds(result->start_spread),
                        static_cast<int>(std::count_if(
                            result->hosts.begin(), result->hosts.end(),
                            [](const StepHostResult& h) {
                              return h.trace_started != absl::InfinitePast();
                            }))));
  }
  result->passed = !result->hosts.empty();
  for (const StepHostResult& h : result->hosts) {
    if (h.outcome != "ok") result->passed = false;
    if (h.outcome == "unreachable" || h.outcome == "timed_out") {
      result_.lost_hosts.push_back(h.host);
      std::erase_if(hosts_, [&](const Host& x) { return x.name == h.host; });
    }
    std::string line = absl::StrCat("    ", h.host, ": ", h.outcome);
    if (h.exit_code >= 0) absl::StrAppend(&line, ", exit ", h.exit_code);
    absl::StrAppend(&line, ", ", HumanDuration(h.duration));
    if (!h.error.empty()) absl::StrAppend(&line, ": ", Oneline(h.error));
    Log(line);
    if (!h.trace_error.empty()) {
      const std::string w =
          absl::StrCat(step.name, " on ", h.host, ": ", Oneline(h.trace_error));
      result_.warnings.push_back(w);
      Log(absl::StrCat("    warning: ", w));
    }
  }
}

void PlanRunner::RunStepOnAgents(const PlanStep& step,
                                 const std::vector<Host>& hosts,
                                 StepResult* result) {
  v1::RunCommandRequest req;
  if (!step.profile.empty()) *req.mutable_trace() = TraceRequest(step);
  req.mutable_trace()->set_name(step.name);
  req.mutable_trace()->set_run_id(result_.run_id);
  req.mutable_trace()->set_phase(step.phase);
  for (const std::string& a : step.command) req.add_argv(a);
  *req.mutable_timeout() = ToProtoDuration(step.timeout);
  req.set_strict(step.strict);
  FanOutOptions fo;
  fo.parallel = options_.parallel;
  fo.per_host_timeout = step.timeout + step.stop_timeout + options_.rpc_timeout;
  const bool sync = plan_.sync_start && !step.profile.empty();
  if (sync) {
    std::vector<ClockEstimate> known;
    for (const auto& [h, c] : result_.clocks) known.push_back(c);
    result->sync_instant = PickStartInstant(known, hosts.size(), fo.parallel,
                                            options_.clock());
  }
  auto results = FanOut<v1::RunCommandResponse>(
      hosts, *clients_, fo,
      [&](AgentClient& c, const Host& host, absl::Time deadline) {
        auto clock = result_.clocks.find(host.name);
        if (!sync || clock == result_.clocks.end()) {
          return c.RunCommand(req, deadline);
        }
        // The agent starts the trace at the instant, then the program.
        v1::RunCommandRequest mine = req;
        *mine.mutable_trace()->mutable_start_at() =
            ToProtoTimestamp(AgentTime(result->sync_instant, clock->second));
        return c.RunCommand(mine, deadline);
      });
  for (auto& r : results) {
    StepHostResult h;
    h.host = r.host.name;
    h.duration = r.took;
    if (r.outcome != HostOutcome::kOk) {
      h.outcome = HostOutcomeName(r.outcome);
      h.error = std::string(r.status.message());
      if (stop_requested_) h.outcome = "interrupted";
    } else {
      const v1::RunCommandResponse& resp = r.value;
      h.exit_code = resp.exit_code();
      h.timed_out = resp.timed_out();
      h.duration = FromProtoDuration(resp.duration());
      h.trace_error = resp.trace_error();
      h.output_tail = resp.output_tail();
      if (resp.has_session() && resp.trace_error().empty() &&
          !step.profile.empty()) {
        h.trace_started = ControllerStart(h.host, resp.session());
      }
      if (!resp.trace_artifact().id().empty())
        h.artifact_ids.push_back(resp.trace_artifact().id());
      if (!resp.log_artifact().id().empty())
        h.artifact_ids.push_back(resp.log_artifact().id());
      h.outcome = resp.started() && resp.exit_code() == 0 && !resp.timed_out()
                      ? "ok"
                      : "failed";
      if (h.outcome == "failed") {
        h.error =
            !resp.error().empty()
                ? resp.error()
                : absl::StrCat("command exited with code ", resp.exit_code());
      }
    }
    result->hosts.push_back(std::move(h));
  }
}

void PlanRunner::RunStepOnController(const PlanStep& step,
                                     const std::vector<Host>& hosts,
                                     StepResult* result) {
  FanOutOptions fo;
  fo.parallel = options_.parallel;
  fo.per_host_timeout = options_.rpc_timeout;
  std::map<std::string, StepHostResult> per_host;
  std::vector<Host> traced;
  for (const Host& h : hosts) per_host[h.name].host = h.name;
  if (!step.profile.empty()) {
    const v1::StartTraceRequest req = TraceRequest(step);
    std::vector<HostResult<v1::TraceSession>> started;
    if (plan_.sync_start) {
      // Prepared everywhere, started at one instant, read back.
      SyncStartResult sync =
          SyncStart(hosts, *clients_, fo, req, &result_.clocks);
      result->sync_instant = sync.instant;
      started = std::move(sync.results);
    } else {
      started = FanOut<v1::TraceSession>(
          hosts, *clients_, fo,
          [&](AgentClient& c, const Host&, absl::Time deadline) {
            return c.StartTrace(req, deadline);
          });
    }
    for (auto& r : started) {
      StepHostResult& h = per_host[r.host.name];
      if (r.outcome == HostOutcome::kOk) {
        traced.push_back(r.host);
      } else if (r.outcome == HostOutcome::kFailed && !step.strict) {
        h.trace_error = std::string(r.status.message());
      } else {
        h.outcome = HostOutcomeName(r.outcome);
        h.error = absl::StrCat("trace did not start: ", r.status.message());
      }
    }
  }

  // The command (or the fixed duration) runs once, here.
  const absl::Time began = options_.clock();
  int exit_code = 0;
  std::string command_error;
  bool timed_out = false;
  if (!step.command.empty()) {
    subprocess::Options o;
    o.argv = step.command;
    o.output_cap = 64 * 1024;
    o.die_with_parent = true;  // A killed controller leaves no step behind.
    subprocess::Process p;
    std::string err;
    if (!p.Start(o, &err)) {
      exit_code = -1;
      command_error = absl::StrCat("cannot start ", step.command[0], ": ", err);
    } else {
      std::optional<subprocess::Result> r;
      while (!r) {
        r = p.Wait(std::chrono::milliseconds(100));
        if (r) break;
        if (stop_requested_) {
          r = p.Kill();
          command_error = "interrupted";
        } else if (options_.clock() - began > step.timeout) {
          r = p.Kill(true);
          timed_out = true;
          command_error = absl::StrCat("killed after the timeout of ",
                                       HumanDuration(step.timeout));
        }
      }
      exit_code =
          r->outcome == subprocess::Outcome::kExited ? r->exit_code : -1;
      if (command_error.empty() && !r->ok()) {
        command_error = absl::StrCat("command ", r->Describe());
      }
      for (auto& [name, h] : per_host)
        h.output_tail = r->output.substr(
            r->output.size() > 4096 ? r->output.size() - 4096 : 0);
    }
  } else {
    while (!stop_requested_ && options_.clock() - began < step.duration) {
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
  }
  const absl::Duration ran = options_.clock() - began;

  if (!traced.empty()) {
    FanOutOptions so = fo;
    so.per_host_timeout = step.stop_timeout + options_.rpc_timeout;
    auto stopped = FanOut<v1::StopTraceResponse>(
        traced, *clients_, so,
        [&](AgentClient& c, const Host&, absl::Time deadline) {
          return c.StopTrace(step.name, deadline);
        });
    for (auto& r : stopped) {
      StepHostResult& h = per_host[r.host.name];
      if (r.outcome == HostOutcome::kOk) {
        h.artifact_ids.push_back(r.value.artifact().id());
        h.trace_started = ControllerStart(h.host, r.value.session());
      } else if (r.outcome == HostOutcome::kFailed) {
        h.trace_error =
            absl::StrCat("trace did not stop: ", r.status.message());
        if (step.strict) {
          h.outcome = "failed";
          h.error = h.trace_error;
        }
      } else {
        h.outcome = HostOutcomeName(r.outcome);
        h.error = absl::StrCat("stopping the trace: ", r.status.message());
      }
    }
  }
  for (const Host& host : hosts) {
    StepHostResult h = per_host[host.name];
    h.exit_code = step.command.empty() ? -1 : exit_code;
    h.timed_out = timed_out;
    h.duration = ran;
    if (h.outcome.empty()) {
      h.outcome = command_error.empty() && exit_code == 0 ? "ok" : "failed";
      if (h.outcome == "failed") h.error = command_error;
    }
    result->hosts.push_back(std::move(h));
  }
}

void PlanRunner::StopLeftoverTraces() {
  if (hosts_.empty()) return;
  FanOutOptions fo;
  fo.parallel = options_.parallel;
  fo.per_host_timeout = options_.rpc_timeout + absl::Minutes(10);
  const std::string run_id = result_.run_id;
  auto results =
      FanOut<int>(hosts_, *clients_, fo,
                  [&](AgentClient& c, const Host&,
                      absl::Time deadline) -> absl::StatusOr<int> {
                    absl::StatusOr<v1::ListTracesResponse> list =
                        c.ListTraces(false, deadline);
                    if (!list.ok()) return list.status();
                    int stopped = 0;
                    for (const v1::TraceSession& s : list->sessions()) {
                      if (s.run_id() != run_id) continue;
                      if (c.StopTrace(s.name(), deadline).ok()) ++stopped;
                    }
                    return stopped;
                  });
  for (const auto& r : results) {
    if (r.outcome == HostOutcome::kOk && r.value > 0) {
      Log(absl::StrCat("  stopped ", r.value,
                       " leftover trace(s) of this run on ", r.host.name));
    }
  }
}

void PlanRunner::Collect() {
  // Which steps passed on which host (for keep: on-failure).
  std::set<std::pair<std::string, std::string>> passed;  // (host, step)
  for (const StepResult& s : result_.steps) {
    for (const StepHostResult& h : s.hosts) {
      if (h.outcome == "ok") passed.insert({h.host, s.step.name});
    }
  }
  FanOutOptions fo;
  fo.parallel = options_.parallel;
  fo.per_host_timeout = options_.rpc_timeout;
  v1::ListArtifactsRequest req;
  req.set_run_id(result_.run_id);
  // Every host that took part, lost ones included: one may be back.
  auto lists = FanOut<v1::ListArtifactsResponse>(
      all_hosts_, *clients_, fo,
      [&](AgentClient& c, const Host&, absl::Time deadline) {
        return c.ListArtifacts(req, deadline);
      });
  std::vector<std::pair<Host, std::vector<v1::Artifact>>> work;
  for (auto& r : lists) {
    if (r.outcome != HostOutcome::kOk) {
      result_.warnings.push_back(absl::StrCat(
          "cannot list artifacts on ", r.host.name, ": ", r.status.message()));
      continue;
    }
    std::vector<v1::Artifact> keep;
    for (const v1::Artifact& a : r.value.artifacts()) {
      if (plan_.keep == KeepPolicy::kOnFailure &&
          passed.count({r.host.name, a.session_name()})) {
        auto d = clients_->Get(r.host)->DeleteArtifact(
            a.id(), options_.clock() + options_.rpc_timeout);
        if (d.ok()) {
          result_.deleted.push_back(
              absl::StrCat(r.host.name, "/", a.file_name()));
          continue;
        }
      }
      keep.push_back(a);
    }
    work.emplace_back(r.host, std::move(keep));
  }
  if (options_.egress != nullptr) {
    EgressOptions eo;
    eo.location = options_.egress_location;
    eo.part_size = EgressPartSize();
    eo.parallel = options_.parallel;
    eo.on_file = [this](const EgressedFile& f) {
      Log(absl::StrCat("  ", f.status, ": ", f.host, "/",
                       f.artifact.file_name(), " (",
                       HumanBytes(f.artifact.size_bytes()), ", ",
                       HumanDuration(f.took), ")",
                       f.error.empty() ? "" : ": ", f.error));
    };
    Log(absl::StrCat("uploading to ",
                     options_.egress_location.Url(
                         options_.egress_location.Key(result_.run_id)),
                     "/ (the agents send, this controller coordinates)"));
    for (EgressedFile& e : EgressArtifacts(work, result_.run_id, *clients_,
                                           *options_.egress, eo)) {
      CollectedFile f;
      f.host = e.host;
      f.artifact = std::move(e.artifact);
      f.status = e.status;
      f.error = e.error;
      f.object_url = options_.egress_location.Url(e.key);
      result_.files.push_back(std::move(f));
    }
    return;
  }
  CollectOptions co;
  co.dir = result_.run_dir;
  co.parallel = options_.parallel;
  co.show_progress = options_.show_progress;
  result_.files = CollectArtifacts(work, *clients_, co);
}

void PlanRunner::WriteManifest() {
  absl::Status s =
      WriteRunManifest(plan_, result_, result_.run_dir / "manifest.json");
  if (!s.ok())
    result_.warnings.push_back(absl::StrCat("manifest: ", s.ToString()));
  if (s.ok() && options_.egress != nullptr) {
    // Beside the objects: `labtrace fetch --from` starts from it.
    absl::StatusOr<std::string> text =
        ReadFile(result_.run_dir / "manifest.json");
    const std::string key =
        options_.egress_location.Key(result_.run_id + "/manifest.json");
    absl::Status put =
        text.ok() ? options_.egress->PutSmall(options_.egress_location.bucket,
                                              key, *text, "application/json")
                  : text.status();
    if (!put.ok()) {
      result_.warnings.push_back(
          absl::StrCat("manifest not uploaded to ",
                       options_.egress_location.Url(key), ": ", put.message()));
      Log(absl::StrCat("warning: ", result_.warnings.back()));
    }
  }
}

absl::Status WriteRunManifest(const Plan& plan, const RunResult& r,
                              const std::filesystem::path& path) {
  using nlohmann::json;
  json m;
  // Bumped when a field changes meaning or goes away (additions keep it);
  // controller/report/manifest.schema.json describes this version.
  m["schema_version"] = kManifestSchemaVersion;
  m["labtrace_version"] = LABTRACE_VERSION;
  m["run_id"] = r.run_id;
  m["command_line"] = r.command_line;
  m["plan"] = {
      {"run", plan.run},
      {"source", plan.source},
      {"keep", plan.keep == KeepPolicy::kOnFailure ? "on-failure" : "always"}};
  m["started_at"] = Rfc3339(r.started);
  m["ended_at"] = Rfc3339(r.ended);
  m["duration_s"] = absl::ToDoubleSeconds(r.ended - r.started);
  m["interrupted"] = r.interrupted;
  m["exit_code"] = r.exit_code;
  m["lost_hosts"] = r.lost_hosts;
  m["lost_events"] = r.lost_events;
  m["warnings"] = r.warnings;
  // sync_start: each host's clock against the controller's (agent minus
  // controller), so traces from different hosts can be lined up.
  m["sync_start"] = plan.sync_start;
  json clocks = json::object();
  for (const auto& [host, c] : r.clocks) {
    clocks[host] = {{"offset_ms", absl::ToDoubleMilliseconds(c.offset)},
                    {"rtt_ms", absl::ToDoubleMilliseconds(c.rtt)}};
  }
  m["clock_offsets"] = clocks;
  json steps = json::array();
  for (const StepResult& s : r.steps) {
    json hosts = json::array();
    for (const StepHostResult& h : s.hosts) {
      hosts.push_back({{"host", h.host},
                       {"outcome", h.outcome},
                       {"exit_code", h.exit_code},
                       {"command_timed_out", h.timed_out},
                       {"duration_s", absl::ToDoubleSeconds(h.duration)},
                       {"error", h.error},
                       {"trace_error", h.trace_error},
                       {"trace_started_at",
                        h.trace_started == absl::InfinitePast()
                            ? json(nullptr)
                            : json(Rfc3339Micros(h.trace_started))},
                       {"artifacts", h.artifact_ids}});
    }
    steps.push_back(
        {{"name", s.step.name},
         {"phase", s.step.phase},
         {"profile", s.step.profile},
         {"command", s.step.command},
         {"run_on", s.step.run_on == RunOn::kAgent ? "agent" : "controller"},
         {"passed", s.passed},
         {"skipped", s.skipped},
         {"started_at", s.skipped ? "" : Rfc3339(s.started)},
         {"ended_at", s.skipped ? "" : Rfc3339(s.ended)},
         {"sync_instant", s.sync_instant == absl::InfinitePast()
                              ? json(nullptr)
                              : json(Rfc3339Micros(s.sync_instant))},
         {"start_spread_ms", absl::ToDoubleMilliseconds(s.start_spread)},
         {"hosts", hosts}});
  }
  m["steps"] = steps;
  json files = json::array();
  for (const CollectedFile& f : r.files) {
    std::error_code ec;
    files.push_back(
        {{"host", f.host},
         {"step", f.artifact.session_name()},
         {"phase", f.artifact.phase()},
         {"artifact_id", f.artifact.id()},
         {"file",
          f.path.empty()
              ? ""
              : PathToUtf8(std::filesystem::relative(f.path, r.run_dir, ec))},
         {"backend", f.artifact.backend()},
         {"size_bytes", f.artifact.size_bytes()},
         {"sha256", f.artifact.sha256()},
         {"status", f.status},
         {"error", f.error},
         {"object", f.object_url.empty()
                        ? json(nullptr)
                        : json({{"url", f.object_url},
                                {"size_bytes", f.artifact.size_bytes()},
                                {"sha256", f.artifact.sha256()}})},
         {"auto_stopped", f.artifact.auto_stopped()},
         {"summary", f.artifact.has_summary() ? ProtoJson(f.artifact.summary())
                                              : json(nullptr)}});
  }
  m["files"] = files;
  m["deleted_on_agents"] = r.deleted;
  if (absl::Status s = EnsureDirectory(path.parent_path()); !s.ok()) return s;
  return WriteFileAtomically(path, m.dump(2) + "\n");
}

}  // namespace labtrace::controller
