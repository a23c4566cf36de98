#include "controller/cli/cli.h"

#include <map>
#include <ostream>
#include <set>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "common/file_util.h"
#include "common/names.h"
#include "common/time_util.h"
#include "common/trace_summary.h"
#include "controller/collect/collector.h"
#include "controller/fleet/fan_out.h"
#include "controller/inventory/inventory.h"
#include "controller/plan/plan.h"
#include "controller/plan/plan_runner.h"
#include "controller/report/proto_json.h"
#include "controller/report/table.h"
#include "google/protobuf/util/json_util.h"
#include "nlohmann/json.hpp"

namespace labtrace::controller {
namespace {

using nlohmann::json;

constexpr char kExitCodesHelp[] = R"(Exit codes:
  0    every host did what was asked
  2    usage or configuration error (nothing was sent)
  3    some host unreachable or timed out (the others were done)
  4    some operation failed (an agent refused; its message is shown)
  5    data problem (a downloaded file did not match the agent's sha256)
  130  interrupted (Ctrl-C)
  1    internal error
The worst applies, in the order 130, 5, 4, 3.
)";

constexpr char kCommonFlags[] = R"(Common flags:
  --inventory FILE     Hosts (YAML). Default $LABTRACE_INVENTORY, else
                       ./labtrace-inventory.yaml. See deploy/inventory.example.yaml.
  --hosts EXPR         Names (vm1,vm2) or label selectors (role=driver,os=linux;
                       all must match). Default: every host.
  --parallel N         Hosts in flight at once. Default 32.
  --timeout D          Deadline per host (e.g. 30s, 10m). Default depends on the
                       command (30s; stop, stop-all: 11m).
  --connect-timeout D  Give up connecting after D. Default 3s (inventory
                       defaults.connect_timeout).
  --json               Machine-readable output on stdout.
)";

struct CommandSpec {
  const char* name;
  const char* summary;
  const char* usage;
  std::set<std::string> value_flags;
  std::set<std::string> bool_flags;
  int positional;  // Exactly this many positional arguments (-1: one or more).
  absl::Duration default_timeout;
};

const std::vector<CommandSpec>& Commands() {
  static const std::vector<CommandSpec> kCommands = {
      {"info",
       "per host: reachable?, version, OS, backends, profiles, sessions, free "
       "disk",
       "labtrace info [--hosts EXPR] [--json]\n\n"
       "Asks every selected agent to describe itself. Unreachable hosts are "
       "listed\n"
       "as such; the exit code says whether all answered.\n",
       {},
       {},
       0,
       absl::Seconds(30)},
      {"status",
       "active trace sessions across the fleet",
       "labtrace status [--hosts EXPR] [--all] [--json]\n\n"
       "Lists the active sessions of every selected agent (--all: also the "
       "ones\n"
       "that finished recently), with elapsed time and bytes recorded so "
       "far.\n",
       {},
       {"all"},
       0,
       absl::Seconds(30)},
      {"start",
       "start a named trace on every selected host",
       "labtrace start NAME --profile P [--mode file|memory] [--run-id R]\n"
       "               [--phase X] [--max-duration D] [--label k=v]...\n\n"
       "Starts trace operation NAME on every selected host at once. The "
       "profile\n"
       "is a name from the agents' catalogs (`labtrace info` lists them).\n"
       "Example: labtrace start unit_tests --profile cpu --run-id nightly-42\n",
       {"profile", "mode", "run-id", "phase", "max-duration", "label"},
       {},
       1,
       absl::Seconds(90)},
      {"stop",
       "stop a named trace everywhere (optionally --collect DIR)",
       "labtrace stop NAME [--collect DIR]\n\n"
       "Stops NAME on every selected host; each host keeps the file as an\n"
       "artifact. With --collect DIR the files are also downloaded into\n"
       "DIR/<run_id>/<host>/ (DIR/<host>/ when the trace has no run id), "
       "verified\n"
       "against the agent's sha256. Stopping a stopped trace returns its "
       "file.\n",
       {"collect"},
       {},
       1,
       absl::Minutes(11)},
      {"cancel",
       "stop a named trace everywhere without keeping files",
       "labtrace cancel NAME\n",
       {},
       {},
       1,
       absl::Seconds(90)},
      {"stop-all",
       "EMERGENCY: stop every trace on every selected agent",
       "labtrace stop-all [--discard]\n\n"
       "Every selected agent stops every active session, in parallel, within "
       "the\n"
       "deadline (--timeout, default 11m; stops of WPR traces can take "
       "minutes).\n"
       "Files are kept unless --discard. Prints per host what was stopped; "
       "hosts\n"
       "that could not be reached are reported and set the exit code. Safe to\n"
       "repeat.\n",
       {},
       {"discard"},
       0,
       absl::Minutes(11)},
      {"artifacts",
       "list trace files on the agents",
       "labtrace artifacts [--run R] [--name N]\n",
       {"run", "name"},
       {},
       0,
       absl::Seconds(30)},
      {"fetch",
       "download trace files into a folder",
       "labtrace fetch --out DIR [--run R] [--name N]\n\n"
       "Downloads the matching artifacts of every selected host into\n"
       "DIR/<run>/<host>/ (DIR/<host>/ without --run), in parallel, "
       "resumable:\n"
       "rerun the same command after an interruption and it continues.\n",
       {"out", "run", "name"},
       {},
       0,
       absl::Hours(1)},
      {"run",
       "run a lab plan: setup, tests, cleanup, each step traced",
       "labtrace run PLAN.yaml --out DIR [--run-id R] "
       "[--fail-on-lost-events]\n\n"
       "Runs the plan's setup steps, then its tests, then cleanup (always),\n"
       "each step its own trace operation on every host, then collects the\n"
       "run's files into DIR/<run_id>/<host>/ with "
       "DIR/<run_id>/manifest.json.\n"
       "See deploy/plans/ for examples. Ctrl-C stops the run's traces, runs\n"
       "cleanup and still collects (a second Ctrl-C also cuts cleanup short).\n"
       "Every trace file is checked on its agent; problems (lost events,\n"
       "truncation) are printed as warnings and kept in the manifest.\n"
       "--fail-on-lost-events: exit 5 if any collected trace lost events.\n",
       {"out", "run-id"},
       {"fail-on-lost-events"},
       1,
       absl::Minutes(1)},
      {"inspect",
       "check local trace files (.etl, .perf.data): lost events, truncation",
       "labtrace inspect FILE... [--json]\n\n"
       "Reads each file locally (no agent needed) and prints what it holds: "
       "for\n"
       ".etl, the session, duration, buffers found/written, events and "
       "buffers\n"
       "lost, OS, processors, log file mode and record count (compressed\n"
       "buffers included; \"+\" marks a count that could not be completed);\n"
       "for .perf.data, the header, records and lost events. Exit code 5 if\n"
       "any file has a problem (truncated, not closed, lost events, bad "
       "header).\n",
       {},
       {},
       -1,
       absl::Seconds(1)},
  };
  return kCommands;
}

const CommandSpec* FindCommand(absl::string_view name) {
  for (const CommandSpec& c : Commands()) {
    if (name == c.name) return &c;
  }
  return nullptr;
}

struct Args {
  const CommandSpec* command = nullptr;
  std::map<std::string, std::vector<std::string>> values;
  std::set<std::string> flags;
  std::vector<std::string> positional;
  bool help = false;

  std::string Get(const std::string& k, const std::string& def = "") const {
    auto it = values.find(k);
    return it == values.end() || it->second.empty() ? def : it->second.back();
  }
};

const std::set<std::string> kGlobalValueFlags = {
    "inventory", "hosts", "parallel", "timeout", "connect-timeout"};
const std::set<std::string> kGlobalBoolFlags = {"json", "help"};

absl::StatusOr<Args> ParseArgs(int argc, const char* const* argv) {
  Args a;
  std::vector<std::string> rest;
  for (int i = 1; i < argc; ++i) rest.push_back(argv[i]);
  std::size_t i = 0;
  // The command is the first non-flag word. Common flags may come before it
  // (labtrace --inventory lab.yaml info).
  std::vector<std::string> leading;
  for (; i < rest.size(); ++i) {
    if (rest[i] == "--help" || rest[i] == "-h") {
      a.help = true;
      continue;
    }
    if (!absl::StartsWith(rest[i], "-")) break;
    std::string name = rest[i].substr(2);
    const std::string bare = name.substr(0, name.find('='));
    if (kGlobalBoolFlags.count(bare)) {
      leading.push_back(rest[i]);
      continue;
    }
    if (!kGlobalValueFlags.count(bare)) {
      return absl::InvalidArgumentError(
          absl::StrCat("unknown flag ", rest[i],
                       " before the command; see labtrace --help"));
    }
    leading.push_back(rest[i]);
    if (name.find('=') == std::string::npos && i + 1 < rest.size())
      leading.push_back(rest[++i]);
  }
  if (i == rest.size()) return a;
  a.command = FindCommand(rest[i]);
  if (a.command == nullptr) {
    return absl::InvalidArgumentError(
        absl::StrCat("unknown command \"", rest[i], "\"; see labtrace --help"));
  }
  // Parse the leading common flags as if they followed the command.
  std::vector<std::string> after(leading);
  after.insert(after.end(), rest.begin() + static_cast<std::ptrdiff_t>(i) + 1,
               rest.end());
  rest = std::move(after);
  for (i = 0; i < rest.size(); ++i) {
    const std::string& arg = rest[i];
    if (arg == "--help" || arg == "-h") {
      a.help = true;
      continue;
    }
    if (!absl::StartsWith(arg, "--")) {
      a.positional.push_back(arg);
      continue;
    }
    std::string name = arg.substr(2);
    std::optional<std::string> value;
    if (auto eq = name.find('='); eq != std::string::npos) {
      value = name.substr(eq + 1);
      name = name.substr(0, eq);
    }
    const bool is_value =
        kGlobalValueFlags.count(name) || a.command->value_flags.count(name);
    const bool is_bool =
        kGlobalBoolFlags.count(name) || a.command->bool_flags.count(name);
    if (!is_value && !is_bool) {
      return absl::InvalidArgumentError(
          absl::StrCat("unknown flag --", name, " for `", a.command->name,
                       "`; see labtrace ", a.command->name, " --help"));
    }
    if (is_bool) {
      if (value)
        return absl::InvalidArgumentError(
            absl::StrCat("--", name, " takes no value"));
      a.flags.insert(name);
      continue;
    }
    if (!value) {
      if (i + 1 >= rest.size()) {
        return absl::InvalidArgumentError(
            absl::StrCat("--", name, " needs a value"));
      }
      value = rest[++i];
    }
    a.values[name].push_back(*value);
  }
  if (a.flags.count("help")) a.help = true;
  const bool count_ok =
      a.command->positional < 0
          ? !a.positional.empty()
          : static_cast<int>(a.positional.size()) == a.command->positional;
  if (!a.help && !count_ok) {
    return absl::InvalidArgumentError(absl::StrCat(
        "`labtrace ", a.command->name, "` takes ",
        a.command->positional < 0 ? std::string("one or more")
                                  : std::to_string(a.command->positional),
        " argument(s), got ", a.positional.size(), "; usage:\n  ",
        a.command->usage));
  }
  return a;
}

// The exit code for a set of per-host outcomes.
int ExitFor(const std::vector<HostOutcome>& outcomes) {
  int code = kExitOk;
  for (HostOutcome o : outcomes) {
    if (o == HostOutcome::kFailed) code = kExitFailed;
    if ((o == HostOutcome::kUnreachable || o == HostOutcome::kTimedOut) &&
        code == kExitOk) {
      code = kExitUnreachable;
    }
  }
  return code;
}

std::string ModeName(v1::TraceMode m) {
  return m == v1::TRACE_MODE_MEMORY ? "memory" : "file";
}

std::string StateName(v1::TraceState s) {
  std::string n = v1::TraceState_Name(s);
  return absl::AsciiStrToLower(absl::StripPrefix(n, "TRACE_STATE_"));
}

std::string Seconds(const google::protobuf::Duration& d) {
  return HumanDuration(absl::Seconds(d.seconds()) +
                       absl::Nanoseconds(d.nanos()));
}

std::string Short(const std::string& s, std::size_t n = 60) {
  std::string o = s.size() > n ? s.substr(0, n - 3) + "..." : s;
  for (char& c : o) {
    if (c == '\n') c = ' ';
  }
  return o;
}

class Cli {
 public:
  Cli(const CliEnvironment& env, Args args)
      : env_(env), args_(std::move(args)) {}

  int Run() {
    json_ = args_.flags.count("json") > 0;
    if (args_.command->name == std::string("inspect")) return Inspect();
    if (absl::Status s = Setup(); !s.ok()) {
      *env_.err << "labtrace: " << s.message() << "\n";
      return kExitUsage;
    }
    const std::string cmd = args_.command->name;
    if (cmd == "info") return Info();
    if (cmd == "status") return Status();
    if (cmd == "start") return Start();
    if (cmd == "stop") return Stop();
    if (cmd == "cancel") return Cancel();
    if (cmd == "stop-all") return StopAll();
    if (cmd == "artifacts") return Artifacts();
    if (cmd == "fetch") return Fetch();
    if (cmd == "run") return RunPlan();
    return kExitInternal;
  }

 private:
  absl::Status Setup() {
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
    if (!absl::SimpleAtoi(args_.Get("parallel", "32"), &fan_.parallel) ||
        fan_.parallel < 1) {
      return absl::InvalidArgumentError(
          "--parallel must be a positive integer");
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
    ClientFactory factory = env_.client_factory;
    if (!factory) {
      factory = [gopts](const Host& h) {
        return MakeGrpcAgentClient(h, gopts);
      };
    }
    clients_ = std::make_unique<ClientPool>(factory);
    if (env_.on_interrupt) {
      env_.on_interrupt([this] {
        interrupted_ = true;
        if (runner_ != nullptr) {
          runner_->RequestStop();
        } else {
          canceller_.CancelAll();
        }
      });
    }
    return absl::OkStatus();
  }

  template <typename T>
  std::vector<HostResult<T>> Fan(
      const std::function<absl::StatusOr<T>(AgentClient&, const Host&,
                                            absl::Time)>& op) {
    return FanOut<T>(hosts_, *clients_, fan_, op);
  }

  template <typename T>
  int Finish(const std::vector<HostResult<T>>& results, Table& table, json& j) {
    std::vector<HostOutcome> outcomes;
    for (const auto& r : results) outcomes.push_back(r.outcome);
    if (json_) {
      *env_.out << j.dump(2) << "\n";
    } else {
      *env_.out << table.Render() << std::flush;  // Before stderr's lines.
      // The table cuts long messages; the tool's own words (wpr's output,
      // HRESULTs) matter, so every failure is repeated whole below it.
      for (const auto& r : results) {
        if (r.outcome == HostOutcome::kOk) continue;
        std::string why(r.status.message());
        for (char& c : why) {
          if (c == '\n' || c == '\r') c = ' ';
        }
        *env_.err << r.host.name << ": " << HostOutcomeName(r.outcome) << ": "
                  << why << "\n";
      }
      int ok = 0;
      for (HostOutcome o : outcomes) ok += o == HostOutcome::kOk;
      *env_.err << ok << "/" << outcomes.size() << " host(s) ok\n";
    }
    if (interrupted_) return kExitInterrupted;
    return ExitFor(outcomes);
  }

  static json HostJson(const Host& h, HostOutcome o, const absl::Status& s,
                       absl::Duration took) {
    return {{"host", h.name},
            {"address", h.address},
            {"outcome", HostOutcomeName(o)},
            {"error", std::string(s.message())},
            {"seconds", absl::ToDoubleSeconds(took)}};
  }

  // "warning: unit_tests on vm3 (file): 41 events lost; raise ..." for each
  // problem of a trace file.
  void WarnAbout(const std::string& host, const v1::Artifact& a) {
    for (const std::string& w : SummaryWarnings(a.summary())) {
      *env_.err << "warning: " << a.session_name() << " on " << host << " ("
                << a.file_name() << "): " << w << "\n";
    }
  }

  int Inspect() {
    Table t({"FILE", "FORMAT", "SIZE", "SESSION", "DURATION", "RECORDS", "LOST",
             "BUFFERS", "OS", "CPUS", "MODE", "PROBLEMS"});
    json j = json::array();
    int code = kExitOk;
    for (const std::string& path : args_.positional) {
      absl::StatusOr<std::optional<v1::TraceSummary>> s =
          SummarizeTraceFile(PathFromUtf8(path));
      if (!s.ok() || !s->has_value()) {
        const std::string why =
            !s.ok() ? std::string(s.status().message())
                    : "not a trace file this tool reads (.etl, .perf.data)";
        *env_.err << "labtrace inspect: " << path << ": " << why << "\n";
        j.push_back({{"file", path}, {"error", why}});
        code = Worst(code, kExitUsage);
        continue;
      }
      const v1::TraceSummary& x = **s;
      if (!x.problems().empty()) code = Worst(code, kExitDataProblem);
      j.push_back({{"file", path}, {"summary", ProtoJson(x)}});
      const bool etl = x.format() == "etl";
      t.AddRow(
          {path, x.format(), HumanBytes(x.file_size()), x.logger_name(),
           x.has_duration() ? Seconds(x.duration()) : "-",
           absl::StrCat(x.record_count(), x.record_count_complete() ? "" : "+"),
           etl ? absl::StrCat(x.events_lost(), " ev, ", x.buffers_lost(),
                              " buf")
               : absl::StrCat(x.events_lost(), " ev"),
           etl ? absl::StrCat(x.buffers_found(), "/", x.buffers_written())
               : "-",
           x.os_version(),
           x.processor_count() > 0 ? std::to_string(x.processor_count()) : "",
           absl::StrJoin(x.log_file_mode_flags(), "|"),
           x.problems().empty() ? "ok" : absl::StrJoin(x.problems(), "; ")});
    }
    if (json_) {
      *env_.out << j.dump(2) << "\n";
    } else {
      *env_.out << t.Render();
    }
    return code;
  }

  int Info() {
    auto results =
        Fan<v1::AgentInfo>([](AgentClient& c, const Host&, absl::Time d) {
          return c.GetAgentInfo(d);
        });
    Table t({"HOST", "ADDRESS", "STATUS", "VERSION", "OS", "BACKENDS",
             "PROFILES", "ACTIVE", "FREE DISK"});
    json j = json::array();
    for (const auto& r : results) {
      json hj = HostJson(r.host, r.outcome, r.status, r.took);
      if (r.outcome != HostOutcome::kOk) {
        t.AddRow({r.host.name, r.host.address, HostOutcomeName(r.outcome), "",
                  "", "", "", "", Short(std::string(r.status.message()))});
      } else {
        const v1::AgentInfo& i = r.value;
        std::vector<std::string> backends, profiles;
        for (const auto& b : i.backends()) {
          backends.push_back(b.available() ? b.name() : b.name() + "(n/a)");
        }
        for (const auto& p : i.profiles()) profiles.push_back(p.name());
        t.AddRow({r.host.name, r.host.address, "ok", i.version(), i.os(),
                  absl::StrJoin(backends, ","), absl::StrJoin(profiles, ","),
                  std::to_string(i.active_sessions()),
                  HumanBytes(i.free_disk_bytes())});
        hj["info"] = ProtoJson(i);
      }
      j.push_back(hj);
    }
    return Finish(results, t, j);
  }

  int Status() {
    const bool all = args_.flags.count("all") > 0;
    auto results = Fan<v1::ListTracesResponse>(
        [all](AgentClient& c, const Host&, absl::Time d) {
          return c.ListTraces(all, d);
        });
    Table t({"HOST", "NAME", "STATE", "PROFILE", "MODE", "RUN", "ELAPSED",
             "RECORDED"});
    json j = json::array();
    for (const auto& r : results) {
      json hj = HostJson(r.host, r.outcome, r.status, r.took);
      if (r.outcome != HostOutcome::kOk) {
        t.AddRow({r.host.name, "-", HostOutcomeName(r.outcome), "", "", "", "",
                  Short(std::string(r.status.message()))});
      } else {
        hj["sessions"] = json::array();
        for (const auto& s : r.value.sessions()) {
          t.AddRow(
              {r.host.name, s.name(), StateName(s.state()), s.profile(),
               ModeName(s.mode()), s.run_id(), Seconds(s.elapsed()),
               s.bytes_recorded() >= 0 ? HumanBytes(s.bytes_recorded()) : "-"});
          hj["sessions"].push_back(ProtoJson(s));
        }
        if (r.value.sessions().empty()) t.AddRow({r.host.name, "(none)"});
      }
      j.push_back(hj);
    }
    return Finish(results, t, j);
  }

  int Start() {
    v1::StartTraceRequest req;
    req.set_name(args_.positional[0]);
    req.set_profile(args_.Get("profile"));
    if (req.profile().empty()) {
      *env_.err << "labtrace start: --profile is required (labtrace info lists "
                   "profiles)\n";
      return kExitUsage;
    }
    const std::string mode = args_.Get("mode", "file");
    if (mode != "file" && mode != "memory") {
      *env_.err << "labtrace start: --mode is file or memory\n";
      return kExitUsage;
    }
    req.set_mode(mode == "memory" ? v1::TRACE_MODE_MEMORY
                                  : v1::TRACE_MODE_FILE);
    req.set_run_id(args_.Get("run-id"));
    req.set_phase(args_.Get("phase"));
    if (std::string d = args_.Get("max-duration"); !d.empty()) {
      absl::Duration dur;
      if (!absl::ParseDuration(d, &dur) || dur <= absl::ZeroDuration()) {
        *env_.err << "labtrace start: bad --max-duration \"" << d << "\"\n";
        return kExitUsage;
      }
      req.mutable_max_duration()->set_seconds(absl::ToInt64Seconds(dur));
    }
    for (const std::string& l : args_.values["label"]) {
      auto eq = l.find('=');
      if (eq == std::string::npos) {
        *env_.err << "labtrace start: --label takes key=value\n";
        return kExitUsage;
      }
      (*req.mutable_labels())[l.substr(0, eq)] = l.substr(eq + 1);
    }
    // Client-side checks the agents would make anyway: fail before sending.
    if (absl::Status s = ValidateName("trace name", req.name()); !s.ok()) {
      *env_.err << "labtrace start: " << s.message() << "\n";
      return kExitUsage;
    }
    auto results = Fan<v1::TraceSession>(
        [&req](AgentClient& c, const Host&, absl::Time d) {
          return c.StartTrace(req, d);
        });
    return SessionTable(results);
  }

  int Cancel() {
    const std::string name = args_.positional[0];
    auto results = Fan<v1::TraceSession>(
        [&name](AgentClient& c, const Host&, absl::Time d) {
          return c.CancelTrace(name, d);
        });
    return SessionTable(results);
  }

  int SessionTable(const std::vector<HostResult<v1::TraceSession>>& results) {
    Table t({"HOST", "RESULT", "NAME", "STATE", "BACKEND", "DETAIL"});
    json j = json::array();
    for (const auto& r : results) {
      json hj = HostJson(r.host, r.outcome, r.status, r.took);
      if (r.outcome != HostOutcome::kOk) {
        t.AddRow({r.host.name, HostOutcomeName(r.outcome), "", "", "",
                  Short(std::string(r.status.message()), 100)});
      } else {
        t.AddRow({r.host.name, "ok", r.value.name(), StateName(r.value.state()),
                  r.value.backend(), r.value.failure_reason()});
        hj["session"] = ProtoJson(r.value);
      }
      j.push_back(hj);
    }
    return Finish(results, t, j);
  }

  int Stop() {
    const std::string name = args_.positional[0];
    auto results = Fan<v1::StopTraceResponse>(
        [&name](AgentClient& c, const Host&, absl::Time d) {
          return c.StopTrace(name, d);
        });
    Table t({"HOST", "RESULT", "FILE", "SIZE", "DETAIL"});
    json j = json::array();
    std::vector<std::pair<Host, std::vector<v1::Artifact>>> to_collect;
    for (const auto& r : results) {
      json hj = HostJson(r.host, r.outcome, r.status, r.took);
      if (r.outcome != HostOutcome::kOk) {
        t.AddRow({r.host.name, HostOutcomeName(r.outcome), "", "",
                  Short(std::string(r.status.message()), 100)});
      } else {
        const v1::Artifact& a = r.value.artifact();
        t.AddRow({r.host.name, "ok", a.file_name(), HumanBytes(a.size_bytes()),
                  a.auto_stopped() ? "auto-stopped at max duration" : ""});
        hj["session"] = ProtoJson(r.value.session());
        hj["artifact"] = ProtoJson(a);
        WarnAbout(r.host.name, a);
        to_collect.push_back({r.host, {a}});
      }
      j.push_back(hj);
    }
    int code = Finish(results, t, j);
    if (std::string dir = args_.Get("collect");
        !dir.empty() && !to_collect.empty()) {
      code = Worst(code, CollectInto(dir, to_collect));
    }
    return code;
  }

  // Groups files by run id: DIR/<run_id>/<host>/, or DIR/<host>/.
  int CollectInto(
      const std::string& dir,
      const std::vector<std::pair<Host, std::vector<v1::Artifact>>>& work) {
    std::map<std::string,
             std::vector<std::pair<Host, std::vector<v1::Artifact>>>>
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
      co.dir = run.empty() || !IsSafeFileName(run)
                   ? PathFromUtf8(dir)
                   : PathFromUtf8(dir) / run;
      co.parallel = fan_.parallel;
      co.show_progress = env_.err_is_terminal && !json_;
      for (const CollectedFile& f : CollectArtifacts(w, *clients_, co)) {
        t.AddRow({f.host, f.artifact.file_name(),
                  HumanBytes(f.artifact.size_bytes()), f.status,
                  f.ok() ? PathToUtf8(f.path) : Short(f.error, 100)});
        if (f.status == "digest_mismatch") code = Worst(code, kExitDataProblem);
        if (f.status == "failed") code = Worst(code, kExitFailed);
      }
    }
    if (!json_) *env_.err << t.Render();
    return code;
  }

  static int Rank(int code) {
    switch (code) {
      case kExitInterrupted:
        return 5;
      case kExitDataProblem:
        return 4;
      case kExitFailed:
        return 3;
      case kExitUnreachable:
        return 2;
      case kExitOk:
        return 0;
      default:
        return 1;
    }
  }
  static int Worst(int a, int b) { return Rank(a) >= Rank(b) ? a : b; }

  int StopAll() {
    const bool discard = args_.flags.count("discard") > 0;
    auto results = Fan<v1::StopAllTracesResponse>(
        [discard](AgentClient& c, const Host&, absl::Time d) {
          return c.StopAllTraces(discard, d);
        });
    Table t({"HOST", "RESULT", "STOPPED", "DETAIL"});
    json j = json::array();
    std::vector<HostOutcome> outcomes;
    for (const auto& r : results) {
      json hj = HostJson(r.host, r.outcome, r.status, r.took);
      HostOutcome o = r.outcome;
      if (r.outcome != HostOutcome::kOk) {
        t.AddRow({r.host.name, HostOutcomeName(r.outcome), "-",
                  Short(std::string(r.status.message()), 100)});
      } else {
        std::vector<std::string> stopped, errors;
        for (const auto& s : r.value.results()) {
          if (s.error().empty()) {
            stopped.push_back(discard ? s.session().name() + "(discarded)"
                                      : s.session().name() + "->" +
                                            s.artifact().file_name());
          } else {
            errors.push_back(s.session().name() + ": " + s.error());
          }
        }
        if (!errors.empty()) o = HostOutcome::kFailed;
        t.AddRow({r.host.name, errors.empty() ? "ok" : "failed",
                  stopped.empty() ? "(nothing running)"
                                  : absl::StrJoin(stopped, " "),
                  Short(absl::StrJoin(errors, "; "), 100)});
        hj["results"] = ProtoJson(r.value)["results"];
        if (!errors.empty()) hj["outcome"] = "failed";
      }
      outcomes.push_back(o);
      j.push_back(hj);
    }
    if (json_) {
      *env_.out << j.dump(2) << "\n";
    } else {
      *env_.out << t.Render();
    }
    return interrupted_ ? kExitInterrupted : ExitFor(outcomes);
  }

  absl::StatusOr<v1::ListArtifactsRequest> ArtifactFilter() {
    v1::ListArtifactsRequest req;
    req.set_run_id(args_.Get("run"));
    req.set_name(args_.Get("name"));
    if (absl::Status s = ValidateOptionalName("--run", req.run_id()); !s.ok())
      return s;
    if (absl::Status s = ValidateOptionalName("--name", req.name()); !s.ok())
      return s;
    return req;
  }

  int Artifacts() {
    absl::StatusOr<v1::ListArtifactsRequest> req = ArtifactFilter();
    if (!req.ok()) {
      *env_.err << "labtrace artifacts: " << req.status().message() << "\n";
      return kExitUsage;
    }
    auto results = Fan<v1::ListArtifactsResponse>(
        [&](AgentClient& c, const Host&, absl::Time d) {
          return c.ListArtifacts(*req, d);
        });
    Table t({"HOST", "FILE", "SIZE", "RUN", "PHASE", "STOPPED", "SHA256"});
    json j = json::array();
    for (const auto& r : results) {
      json hj = HostJson(r.host, r.outcome, r.status, r.took);
      if (r.outcome != HostOutcome::kOk) {
        t.AddRow({r.host.name, HostOutcomeName(r.outcome), "", "", "", "",
                  Short(std::string(r.status.message()))});
      } else {
        hj["artifacts"] = json::array();
        for (const auto& a : r.value.artifacts()) {
          t.AddRow({r.host.name, a.file_name(), HumanBytes(a.size_bytes()),
                    a.run_id(), a.phase(),
                    Rfc3339(absl::FromUnixSeconds(a.stop_time().seconds())),
                    a.sha256().substr(0, 12)});
          hj["artifacts"].push_back(ProtoJson(a));
          WarnAbout(r.host.name, a);
        }
      }
      j.push_back(hj);
    }
    return Finish(results, t, j);
  }

  int Fetch() {
    const std::string out = args_.Get("out");
    absl::StatusOr<v1::ListArtifactsRequest> req = ArtifactFilter();
    if (out.empty() || !req.ok()) {
      *env_.err << "labtrace fetch: "
                << (out.empty() ? "--out DIR is required"
                                : std::string(req.status().message()))
                << "\n";
      return kExitUsage;
    }
    FanOutOptions list_opts = fan_;
    list_opts.per_host_timeout = absl::Seconds(30);
    auto lists = FanOut<v1::ListArtifactsResponse>(
        hosts_, *clients_, list_opts,
        [&](AgentClient& c, const Host&, absl::Time d) {
          return c.ListArtifacts(*req, d);
        });
    std::vector<std::pair<Host, std::vector<v1::Artifact>>> work;
    std::vector<HostOutcome> outcomes;
    for (const auto& r : lists) {
      outcomes.push_back(r.outcome);
      if (r.outcome != HostOutcome::kOk) {
        *env_.err << r.host.name << ": " << HostOutcomeName(r.outcome) << ": "
                  << r.status.message() << "\n";
        continue;
      }
      work.push_back(
          {r.host, {r.value.artifacts().begin(), r.value.artifacts().end()}});
    }
    CollectOptions co;
    co.dir = req->run_id().empty() ? PathFromUtf8(out)
                                   : PathFromUtf8(out) / req->run_id();
    co.parallel = fan_.parallel;
    co.per_file_timeout = fan_.per_host_timeout;
    co.show_progress = env_.err_is_terminal && !json_;
    std::vector<CollectedFile> files = CollectArtifacts(work, *clients_, co);
    Table t({"HOST", "FILE", "SIZE", "STATUS", "PATH"});
    json j = json::array();
    int code = ExitFor(outcomes);
    std::uint64_t total = 0;
    for (const CollectedFile& f : files) {
      t.AddRow({f.host, f.artifact.file_name(),
                HumanBytes(f.artifact.size_bytes()), f.status,
                f.ok() ? PathToUtf8(f.path) : Short(f.error, 100)});
      j.push_back({{"host", f.host},
                   {"file", PathToUtf8(f.path)},
                   {"status", f.status},
                   {"error", f.error},
                   {"artifact", ProtoJson(f.artifact)}});
      if (f.ok()) total += f.artifact.size_bytes();
      WarnAbout(f.host, f.artifact);
      if (f.status == "digest_mismatch") code = Worst(code, kExitDataProblem);
      if (f.status == "failed") code = Worst(code, kExitFailed);
    }
    if (json_) {
      *env_.out << j.dump(2) << "\n";
    } else {
      *env_.out << t.Render();
      *env_.err << files.size() << " file(s), " << HumanBytes(total) << " in "
                << PathToUtf8(co.dir) << "\n";
    }
    return interrupted_ ? kExitInterrupted : code;
  }

  int RunPlan() {
    const std::string out = args_.Get("out");
    if (out.empty()) {
      *env_.err << "labtrace run: --out DIR is required\n";
      return kExitUsage;
    }
    if (!plan_) {
      absl::StatusOr<Plan> plan = LoadPlan(args_.positional[0]);
      if (!plan.ok()) {
        *env_.err << "labtrace: " << plan.status().message() << "\n";
        return kExitUsage;
      }
      plan_ = *plan;
    }
    PlanRunOptions o;
    o.out_dir = out;
    o.run_id = args_.Get("run-id");
    if (!o.run_id.empty() && !IsValidName(o.run_id)) {
      *env_.err << "labtrace run: "
                << ValidateName("--run-id", o.run_id).message() << "\n";
      return kExitUsage;
    }
    o.parallel = fan_.parallel;
    o.rpc_timeout = fan_.per_host_timeout;
    o.show_progress = env_.err_is_terminal && !json_;
    o.fail_on_lost_events = args_.flags.count("fail-on-lost-events") > 0;
    o.log = env_.err;
    runner_ = std::make_unique<PlanRunner>(*plan_, hosts_, clients_.get(),
                                           &canceller_, o);
    RunResult r = runner_->Run();
    PrintRunSummary(r);
    return r.exit_code;
  }

  void PrintRunSummary(const RunResult& r) {
    if (json_) {
      absl::StatusOr<std::string> m = ReadFile(r.run_dir / "manifest.json");
      *env_.out << (m.ok() ? *m : "{}\n");
      return;
    }
    std::ostream& o = *env_.out;
    o << "\nrun " << r.run_id << (r.interrupted ? " (interrupted)" : "") << ": "
      << HumanDuration(r.ended - r.started) << "\n";
    std::map<std::pair<std::string, std::string>,
             std::vector<const CollectedFile*>>
        files;
    for (const CollectedFile& f : r.files)
      files[{f.host, f.artifact.session_name()}].push_back(&f);
    Table t({"STEP", "PHASE", "HOST", "RESULT", "EXIT", "TIME", "FILES"});
    for (const StepResult& s : r.steps) {
      if (s.skipped) {
        t.AddRow({s.step.name, s.step.phase, "*", "skipped"});
        continue;
      }
      for (const StepHostResult& h : s.hosts) {
        std::vector<std::string> names;
        for (const CollectedFile* f : files[{h.host, s.step.name}]) {
          names.push_back(
              absl::StrCat(f->artifact.file_name(), " (",
                           HumanBytes(f->artifact.size_bytes()),
                           f->ok() ? "" : absl::StrCat(", ", f->status), ")"));
        }
        t.AddRow({s.step.name, s.step.phase, h.host, h.outcome,
                  h.exit_code >= 0 ? std::to_string(h.exit_code) : "-",
                  HumanDuration(h.duration),
                  names.empty() ? "-" : absl::StrJoin(names, ", ")});
      }
    }
    o << t.Render();
    for (const std::string& w : r.warnings) o << "warning: " << w << "\n";
    if (!r.lost_hosts.empty())
      o << "lost hosts: " << absl::StrJoin(r.lost_hosts, ", ") << "\n";
    if (!r.deleted.empty()) {
      o << r.deleted.size()
        << " artifact(s) of passed steps deleted on the agents (keep: "
           "on-failure)\n";
    }
    std::uint64_t bytes = 0;
    int ok = 0;
    for (const CollectedFile& f : r.files) {
      if (f.ok()) {
        bytes += f.artifact.size_bytes();
        ++ok;
      }
    }
    o << ok << "/" << r.files.size() << " file(s) collected, "
      << HumanBytes(bytes) << "\n";
    o << "artifacts: " << PathToUtf8(r.run_dir) << "\n";
    o << "manifest:  " << PathToUtf8(r.run_dir / "manifest.json") << "\n";
  }

  const CliEnvironment& env_;
  Args args_;
  bool json_ = false;
  Inventory inventory_;
  std::vector<Host> hosts_;
  std::optional<Plan> plan_;
  FanOutOptions fan_;
  CallCanceller canceller_;
  std::unique_ptr<ClientPool> clients_;
  std::unique_ptr<PlanRunner> runner_;
  std::atomic<bool> interrupted_{false};
};

}  // namespace

std::string ControllerUsage() {
  std::string s =
      "labtrace: drive labtrace agents on many machines at once.\n\n"
      "Usage: labtrace COMMAND [ARGS] [FLAGS]\n\nCommands:\n";
  for (const CommandSpec& c : Commands()) {
    s += absl::StrCat("  ", c.name,
                      std::string(12 - std::string(c.name).size(), ' '),
                      c.summary, "\n");
  }
  s += "\n";
  s += kCommonFlags;
  s += "\n";
  s += kExitCodesHelp;
  s += "\nExamples:\n"
       "  labtrace info\n"
       "  labtrace start unit_tests --profile cpu --hosts role=driver\n"
       "  labtrace stop unit_tests --collect ./traces\n"
       "  labtrace run deploy/plans/quickstart.yaml --out ./runs\n"
       "  labtrace stop-all            # emergency: every trace, every host\n"
       "\n`labtrace COMMAND --help` explains each command.\n";
  return s;
}

int RunCli(int argc, const char* const* argv, const CliEnvironment& env) {
  absl::StatusOr<Args> args = ParseArgs(argc, argv);
  if (!args.ok()) {
    *env.err << "labtrace: " << args.status().message() << "\n";
    return kExitUsage;
  }
  if (args->command == nullptr) {
    *env.out << ControllerUsage();
    return args->help ? kExitOk : kExitUsage;
  }
  if (args->help) {
    *env.out << "Usage: " << args->command->usage << "\n"
             << kCommonFlags << "\n"
             << kExitCodesHelp;
    return kExitOk;
  }
  Cli cli(env, std::move(*args));
  return cli.Run();
}

}  // namespace labtrace::controller
