#include "controller/cli/cli_context.h"

#include <map>

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "common/file_util.h"
#include "common/time_util.h"
#include "common/trace_summary.h"
#include "controller/collect/collector.h"
#include "controller/report/provider_warning.h"

namespace labtrace::controller {

using nlohmann::json;

std::string ShortText(const std::string& s, std::size_t n) {
  std::string o = s.size() > n ? s.substr(0, n - 3) + "..." : s;
  for (char& c : o) {
    if (c == '\n' || c == '\r') c = ' ';
  }
  return o;
}

std::string StateText(v1::TraceState s) {
  std::string n = v1::TraceState_Name(s);
  return absl::AsciiStrToLower(absl::StripPrefix(n, "TRACE_STATE_"));
}

std::string ModeText(v1::TraceMode m) {
  return m == v1::TRACE_MODE_MEMORY ? "memory" : "file";
}

std::string DurationText(const google::protobuf::Duration& d) {
  return HumanDuration(absl::Seconds(d.seconds()) +
                       absl::Nanoseconds(d.nanos()));
}

CliContext::CliContext(const CliEnvironment& env, Args args)
    : env_(env), args_(std::move(args)), json_(args_.Has("json")) {}

absl::Status CliContext::Setup() {
  std::string path = args_.Get("inventory", env_.inventory_env);
  if (path.empty()) path = "labtrace-inventory.yaml";
  absl::StatusOr<Inventory> inv = LoadInventory(path);
  if (!inv.ok()) return inv.status();
  inventory_ = *inv;
  std::string selector = args_.Get("hosts");
  if (args_.command->name == std::string("run") && selector.empty()) {
    absl::StatusOr<Plan> plan = LoadPlan(args_.positional[0]);
    if (!plan.ok()) return plan.status();
    plan_ = *plan;
    selector = plan_->hosts;
  }
  absl::StatusOr<std::vector<Host>> hosts = SelectHosts(inventory_, selector);
  if (!hosts.ok()) return hosts.status();
  hosts_ = *hosts;
  if (!absl::SimpleAtoi(args_.Get("parallel", "256"), &fan_.parallel) ||
      fan_.parallel < 1) {
    return absl::InvalidArgumentError("--parallel must be a positive integer");
  }
  fan_.per_host_timeout = args_.command->default_timeout;
  if (std::string t = args_.Get("timeout"); !t.empty()) {
    if (!absl::ParseDuration(t, &fan_.per_host_timeout) ||
        fan_.per_host_timeout <= absl::ZeroDuration()) {
      return absl::InvalidArgumentError(
          absl::StrCat("--timeout \"", t, "\": use e.g. 30s, 10m"));
    }
  }
  GrpcClientOptions gopts;
  gopts.connect_timeout = inventory_.connect_timeout;
  if (std::string t = args_.Get("connect-timeout"); !t.empty()) {
    if (!absl::ParseDuration(t, &gopts.connect_timeout) ||
        gopts.connect_timeout <= absl::ZeroDuration()) {
      return absl::InvalidArgumentError(
          absl::StrCat("--connect-timeout \"", t, "\": use e.g. 3s"));
    }
  }
  gopts.canceller = &canceller_;
  gopts.compress_downloads = !args_.Has("no-compress");
  ClientFactory factory = env_.client_factory;
  if (!factory) {
    factory = [gopts](const Host& h) { return MakeGrpcAgentClient(h, gopts); };
  }
  clients_ = std::make_unique<ClientPool>(factory);
  if (env_.on_interrupt) env_.on_interrupt([this] { Interrupt(); });
  return absl::OkStatus();
}

void CliContext::SetRunner(PlanRunner* runner) {
  absl::MutexLock lock(&runner_mu_);
  runner_ = runner;
}

void CliContext::Interrupt() {
  interrupted_ = true;
  absl::MutexLock lock(&runner_mu_);
  if (runner_ != nullptr) {
    runner_->RequestStop();
  } else {
    canceller_.CancelAll();
  }
}

int CliContext::FinishTable(
    const std::vector<HostOutcome>& outcomes,
    const std::vector<std::pair<std::string,
                                std::pair<HostOutcome, absl::Status>>>& failures,
    Table& table, nlohmann::json& j) {
  if (json_) {
    out() << j.dump(2) << "\n";
  } else {
    out() << table.Render() << std::flush;  // Before stderr's lines.
    // The table cuts long messages; the tool's own words (wpr's output,
    // HRESULTs) matter, so every failure is repeated whole below it.
    for (const auto& [host, f] : failures) {
      err() << host << ": " << HostOutcomeName(f.first) << ": "
            << ShortText(std::string(f.second.message()), 1 << 20) << "\n";
    }
    int ok = 0;
    for (HostOutcome o : outcomes) ok += o == HostOutcome::kOk;
    err() << ok << "/" << outcomes.size() << " host(s) ok\n";
  }
  if (interrupted_) return kExitInterrupted;
  return ExitFor(outcomes);
}

json CliContext::HostJson(const Host& h, HostOutcome o, const absl::Status& s,
                          absl::Duration took) {
  return {{"host", h.name},
          {"address", h.address},
          {"outcome", HostOutcomeName(o)},
          {"error", std::string(s.message())},
          {"seconds", absl::ToDoubleSeconds(took)}};
}

void CliContext::WarnAbout(const std::string& host, const v1::Artifact& a) {
  for (const std::string& w : SummaryWarnings(a.summary())) {
    err() << "warning: " << a.session_name() << " on " << host << " ("
          << a.file_name() << "): " << w << "\n";
  }
  if (std::optional<std::string> w = ProviderWarning(a.summary())) {
    err() << "warning: " << a.session_name() << " on " << host << " ("
          << a.file_name() << "): " << *w << "\n";
  }
  if (a.salvaged()) {
    err() << "warning: " << a.session_name() << " on " << host << " ("
          << a.file_name() << ") was salvaged: " << a.salvage_note() << "\n";
  }
}

int CliContext::CollectInto(
    const std::string& dir,
    const std::vector<std::pair<Host, std::vector<v1::Artifact>>>& work) {
  std::map<std::string, std::vector<std::pair<Host, std::vector<v1::Artifact>>>>
      by_run;
  for (const auto& [host, artifacts] : work) {
    for (const v1::Artifact& a : artifacts) {
      auto& list = by_run[a.run_id()];
      if (list.empty() || list.back().first.name != host.name)
        list.push_back({host, {}});
      list.back().second.push_back(a);
    }
  }
  int code = kExitOk;
  Table t({"HOST", "FILE", "SIZE", "STATUS", "PATH"});
  for (const auto& [run, w] : by_run) {
    CollectOptions co;
    co.dir = run.empty() || !IsSafeFileName(run) ? PathFromUtf8(dir)
                                                 : PathFromUtf8(dir) / run;
    co.parallel = fan_.parallel;
    co.show_progress = env_.err_is_terminal && !json_;
    for (const CollectedFile& f : CollectArtifacts(w, *clients_, co)) {
      t.AddRow({f.host, f.artifact.file_name(),
                HumanBytes(f.artifact.size_bytes()), f.status,
                f.ok() ? PathToUtf8(f.path) : ShortText(f.error, 100)});
      if (f.status == "digest_mismatch") code = WorstExit(code, kExitDataProblem);
      if (f.status == "failed") code = WorstExit(code, kExitFailed);
    }
  }
  if (!json_) err() << t.Render();
  return code;
}

}  // namespace labtrace::controller
