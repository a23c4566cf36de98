// The commands about trace sessions: info, status, start, stop, cancel,
// stop-all (with the fence), unfence, keepalive.

#include "absl/strings/numbers.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/file_util.h"
#include "common/names.h"
#include "common/proto_time.h"
#include "common/time_util.h"
#include "controller/cli/cli_context.h"
#include "controller/cli/commands.h"
#include "controller/fleet/clock_sync.h"
#include "controller/report/proto_json.h"

namespace labtrace::controller {
namespace {

using nlohmann::json;

// `extra`: per host, more JSON for --json (a synchronised start's clock).
int SessionTable(CliContext& ctx,
                 const std::vector<HostResult<v1::TraceSession>>& results,
                 const std::map<std::string, json>* extra = nullptr) {
  Table t({"HOST", "RESULT", "NAME", "STATE", "BACKEND", "DETAIL"});
  json j = json::array();
  for (const auto& r : results) {
    json hj = CliContext::HostJson(r.host, r.outcome, r.status, r.took);
    if (r.outcome != HostOutcome::kOk) {
      t.AddRow({r.host.name, HostOutcomeName(r.outcome), "", "", "",
                ShortText(std::string(r.status.message()), 100)});
    } else {
      t.AddRow({r.host.name, "ok", r.value.name(), StateText(r.value.state()),
                r.value.backend(), r.value.failure_reason()});
      hj["session"] = ProtoJson(r.value);
    }
    if (extra != nullptr && extra->count(r.host.name)) {
      hj["sync"] = extra->at(r.host.name);
    }
    j.push_back(hj);
  }
  return ctx.Finish(results, t, j);
}

std::string FenceText(const v1::FenceState& f) {
  if (!f.fenced()) return "";
  return absl::StrCat("FENCED by ", f.by(), " at ",
                      Rfc3339(FromProtoTimestamp(f.at())), ": ", f.reason());
}

// Parses a --flag duration; false (and a message) if bad.
bool FlagDuration(CliContext& ctx, const char* command, const char* flag,
                  absl::Duration* out, bool allow_zero) {
  const std::string v = ctx.args().Get(flag);
  if (v.empty()) return true;
  absl::Duration d;
  if (!absl::ParseDuration(v, &d) || d < absl::ZeroDuration() ||
      (!allow_zero && d == absl::ZeroDuration())) {
    ctx.err() << "labtrace " << command << ": bad --" << flag << " \"" << v
              << "\"; use e.g. 30s, 10m, 4h\n";
    return false;
  }
  *out = d;
  return true;
}

}  // namespace

int InfoCommand(CliContext& ctx) {
  auto results = ctx.Fan<v1::AgentInfo>(
      [](AgentClient& c, const Host&, absl::Time d) {
        return c.GetAgentInfo(d);
      });
  Table t({"HOST", "ADDRESS", "STATUS", "VERSION", "OS", "BACKENDS", "PROFILES",
           "ACTIVE", "FREE DISK"});
  json j = json::array();
  std::vector<std::string> fences;
  for (const auto& r : results) {
    json hj = CliContext::HostJson(r.host, r.outcome, r.status, r.took);
    if (r.outcome != HostOutcome::kOk) {
      t.AddRow({r.host.name, r.host.address, HostOutcomeName(r.outcome), "",
                "", "", "", "", ShortText(std::string(r.status.message()))});
    } else {
      const v1::AgentInfo& i = r.value;
      std::vector<std::string> backends, profiles;
      for (const auto& b : i.backends()) {
        backends.push_back(b.available() ? b.name() : b.name() + "(n/a)");
      }
      for (const auto& p : i.profiles()) profiles.push_back(p.name());
      t.AddRow({r.host.name, r.host.address,
                i.fence().fenced() ? "FENCED" : "ok", i.version(), i.os(),
                absl::StrJoin(backends, ","), absl::StrJoin(profiles, ","),
                std::to_string(i.active_sessions()),
                HumanBytes(i.free_disk_bytes())});
      if (i.fence().fenced()) {
        fences.push_back(absl::StrCat(r.host.name, ": ", FenceText(i.fence())));
      }
      if (!i.journal_error().empty()) {
        fences.push_back(absl::StrCat(r.host.name, ": the agent cannot write "
                                                   "its journal: ",
                                      i.journal_error()));
      }
      hj["info"] = ProtoJson(i);
    }
    j.push_back(hj);
  }
  const int code = ctx.Finish(results, t, j);
  if (!ctx.json()) {
    for (const std::string& f : fences) ctx.err() << f << "\n";
  }
  return code;
}

int StatusCommand(CliContext& ctx) {
  const bool all = ctx.args().Has("all");
  auto results = ctx.Fan<v1::ListTracesResponse>(
      [all](AgentClient& c, const Host&, absl::Time d) {
        return c.ListTraces(all, d);
      });
  Table t({"HOST", "NAME", "STATE", "PROFILE", "MODE", "RUN", "ELAPSED",
           "RECORDED", "LEASE", "STOPPED BY"});
  json j = json::array();
  for (const auto& r : results) {
    json hj = CliContext::HostJson(r.host, r.outcome, r.status, r.took);
    if (r.outcome != HostOutcome::kOk) {
      t.AddRow({r.host.name, "-", HostOutcomeName(r.outcome), "", "", "", "",
                ShortText(std::string(r.status.message()))});
    } else {
      hj["sessions"] = json::array();
      for (const auto& s : r.value.sessions()) {
        std::string lease = "-";
        if (s.has_lease_expires_at()) {
          lease = absl::StrCat(
              "ends in ",
              HumanDuration(std::max(
                  FromProtoTimestamp(s.lease_expires_at()) - absl::Now(),
                  absl::ZeroDuration())));
        }
        t.AddRow({r.host.name, s.name(), StateText(s.state()), s.profile(),
                  ModeText(s.mode()), s.run_id(), DurationText(s.elapsed()),
                  s.bytes_recorded() >= 0 ? HumanBytes(s.bytes_recorded()) : "-",
                  lease, s.stop_reason()});
        hj["sessions"].push_back(ProtoJson(s));
      }
      if (r.value.sessions().empty()) t.AddRow({r.host.name, "(none)"});
    }
    j.push_back(hj);
  }
  return ctx.Finish(results, t, j);
}

int StartCommand(CliContext& ctx) {
  const Args& args = ctx.args();
  v1::StartTraceRequest req;
  req.set_name(args.positional[0]);
  req.set_profile(args.Get("profile"));
  if (req.profile().empty()) {
    ctx.err() << "labtrace start: --profile is required (labtrace info lists "
                 "profiles)\n";
    return kExitUsage;
  }
  const std::string mode = args.Get("mode", "file");
  if (mode != "file" && mode != "memory") {
    ctx.err() << "labtrace start: --mode is file or memory\n";
    return kExitUsage;
  }
  req.set_mode(mode == "memory" ? v1::TRACE_MODE_MEMORY : v1::TRACE_MODE_FILE);
  req.set_run_id(args.Get("run-id"));
  req.set_phase(args.Get("phase"));
  absl::Duration max_duration = absl::ZeroDuration();
  absl::Duration lease = absl::ZeroDuration();
  if (!FlagDuration(ctx, "start", "max-duration", &max_duration, false) ||
      !FlagDuration(ctx, "start", "lease", &lease, false)) {
    return kExitUsage;
  }
  if (max_duration > absl::ZeroDuration()) {
    *req.mutable_max_duration() = ToProtoDuration(max_duration);
  }
  if (lease > absl::ZeroDuration()) {
    *req.mutable_lease() = ToProtoDuration(lease);
    req.set_lease_holder(args.Get("lease-holder"));
    if (req.lease_holder().empty() && req.run_id().empty()) {
      ctx.err() << "labtrace start: --lease needs --run-id or --lease-holder "
                   "(what `labtrace keepalive` renews)\n";
      return kExitUsage;
    }
  }
  if (std::string b = args.Get("max-bytes"); !b.empty()) {
    std::uint64_t n = 0;
    if (!absl::SimpleAtoi(b, &n) || n == 0) {
      ctx.err() << "labtrace start: --max-bytes takes a positive number of "
                   "bytes\n";
      return kExitUsage;
    }
    req.set_max_bytes(n);
  }
  for (const std::string& l : args.values.count("label")
                                  ? args.values.at("label")
                                  : std::vector<std::string>{}) {
    auto eq = l.find('=');
    if (eq == std::string::npos) {
      ctx.err() << "labtrace start: --label takes key=value\n";
      return kExitUsage;
    }
    (*req.mutable_labels())[l.substr(0, eq)] = l.substr(eq + 1);
  }
  // Client-side checks the agents would make anyway: fail before sending.
  if (absl::Status s = ValidateName("trace name", req.name()); !s.ok()) {
    ctx.err() << "labtrace start: " << s.message() << "\n";
    return kExitUsage;
  }
  if (!args.Has("sync")) {
    auto results = ctx.Fan<v1::TraceSession>(
        [&req](AgentClient& c, const Host&, absl::Time d) {
          return c.StartTrace(req, d);
        });
    return SessionTable(ctx, results);
  }
  // Synchronised: clocks, one instant, prepare, commit at the instant.
  SyncStartResult sync = SyncStart(ctx.hosts(), ctx.clients(), ctx.fan(), req);
  if (!ctx.json()) {
    if (sync.started > 0) {
      absl::Duration lo = absl::InfiniteDuration(), hi = -absl::InfiniteDuration();
      for (const auto& [h, c] : sync.clocks) {
        lo = std::min(lo, c.offset);
        hi = std::max(hi, c.offset);
      }
      ctx.err() << absl::StreamFormat(
          "synchronised start: %d host(s) started within %.2f ms of each "
          "other, at most %.2f ms after the agreed instant; clock offsets "
          "%+.2f to %+.2f ms\n",
          sync.started, absl::ToDoubleMilliseconds(sync.spread),
          absl::ToDoubleMilliseconds(sync.latest_late),
          absl::ToDoubleMilliseconds(lo), absl::ToDoubleMilliseconds(hi));
    } else {
      ctx.err() << "synchronised start: no host started\n";
    }
  }
  std::map<std::string, json> extra;
  for (const auto& r : sync.results) {
    auto c = sync.clocks.find(r.host.name);
    if (c == sync.clocks.end()) continue;
    json s = {{"agreed_instant", Rfc3339Micros(sync.instant)},
              {"clock_offset_ms", absl::ToDoubleMilliseconds(c->second.offset)},
              {"rtt_ms", absl::ToDoubleMilliseconds(c->second.rtt)},
              {"spread_ms", absl::ToDoubleMilliseconds(sync.spread)},
              {"late_ms", nullptr}};
    if (r.outcome == HostOutcome::kOk) {
      s["late_ms"] = absl::ToDoubleMilliseconds(
          ControllerTime(FromProtoTimestamp(r.value.start_time()), c->second) -
          sync.instant);
    }
    extra[r.host.name] = std::move(s);
  }
  return SessionTable(ctx, sync.results, &extra);
}

int StopCommand(CliContext& ctx) {
  const std::string name = ctx.args().positional[0];
  auto results = ctx.Fan<v1::StopTraceResponse>(
      [&name](AgentClient& c, const Host&, absl::Time d) {
        return c.StopTrace(name, d);
      });
  Table t({"HOST", "RESULT", "FILE", "SIZE", "DETAIL"});
  json j = json::array();
  std::vector<std::pair<Host, std::vector<v1::Artifact>>> to_collect;
  for (const auto& r : results) {
    json hj = CliContext::HostJson(r.host, r.outcome, r.status, r.took);
    if (r.outcome != HostOutcome::kOk) {
      t.AddRow({r.host.name, HostOutcomeName(r.outcome), "", "",
                ShortText(std::string(r.status.message()), 100)});
    } else {
      const v1::Artifact& a = r.value.artifact();
      t.AddRow({r.host.name, "ok", a.file_name(), HumanBytes(a.size_bytes()),
                a.auto_stopped() ? absl::StrCat("stopped by the agent (",
                                                a.stop_reason(), ")")
                                 : ""});
      hj["session"] = ProtoJson(r.value.session());
      hj["artifact"] = ProtoJson(a);
      ctx.WarnAbout(r.host.name, a);
      to_collect.push_back({r.host, {a}});
    }
    j.push_back(hj);
  }
  int code = ctx.Finish(results, t, j);
  if (std::string dir = ctx.args().Get("collect");
      !dir.empty() && !to_collect.empty()) {
    code = WorstExit(code, ctx.CollectInto(dir, to_collect));
  }
  return code;
}

int CancelCommand(CliContext& ctx) {
  const std::string name = ctx.args().positional[0];
  auto results = ctx.Fan<v1::TraceSession>(
      [&name](AgentClient& c, const Host&, absl::Time d) {
        return c.CancelTrace(name, d);
      });
  return SessionTable(ctx, results);
}

int StopAllCommand(CliContext& ctx) {
  const bool discard = ctx.args().Has("discard");
  const bool fence = ctx.args().Has("fence");
  const std::string reason = ctx.args().Get("reason");
  if (fence && discard) {
    ctx.err() << "labtrace stop-all: --fence keeps the files; it does not "
                 "take --discard\n";
    return kExitUsage;
  }
  if (fence && reason.empty()) {
    ctx.err() << "labtrace stop-all: --fence needs --reason TEXT (shown to "
                 "everyone the fence refuses)\n";
    return kExitUsage;
  }
  if (!fence && !reason.empty()) {
    ctx.err() << "labtrace stop-all: --reason goes with --fence\n";
    return kExitUsage;
  }
  auto results = ctx.Fan<v1::StopAllTracesResponse>(
      [discard, fence, &reason](AgentClient& c, const Host&, absl::Time d)
          -> absl::StatusOr<v1::StopAllTracesResponse> {
        if (!fence) return c.StopAllTraces(discard, d);
        absl::StatusOr<v1::FenceResponse> f = c.Fence(reason, d);
        if (!f.ok()) return f.status();
        return f->stopped();
      });
  Table t({"HOST", "RESULT", "STOPPED", "COMMANDS ENDED", "DETAIL"});
  json j = json::array();
  std::vector<HostOutcome> outcomes;
  std::vector<std::pair<std::string, std::pair<HostOutcome, absl::Status>>>
      failures;
  for (const auto& r : results) {
    json hj = CliContext::HostJson(r.host, r.outcome, r.status, r.took);
    HostOutcome o = r.outcome;
    if (r.outcome != HostOutcome::kOk) {
      t.AddRow({r.host.name, HostOutcomeName(r.outcome), "-", "-",
                ShortText(std::string(r.status.message()), 100)});
      failures.push_back({r.host.name, {r.outcome, r.status}});
    } else {
      std::vector<std::string> stopped, errors, commands;
      for (const auto& s : r.value.results()) {
        if (s.error().empty()) {
          stopped.push_back(discard ? s.session().name() + "(discarded)"
                                    : s.session().name() + "->" +
                                          s.artifact().file_name());
        } else {
          errors.push_back(s.session().name() + ": " + s.error());
        }
      }
      for (const auto& c : r.value.commands()) {
        commands.push_back(absl::StrCat(c.name(), " (", c.program(), ")"));
      }
      if (!errors.empty()) {
        o = HostOutcome::kFailed;
        failures.push_back(
            {r.host.name,
             {o, absl::InternalError(absl::StrJoin(errors, "; "))}});
      }
      t.AddRow({r.host.name,
                errors.empty() ? (fence ? "fenced" : "ok") : "failed",
                stopped.empty() ? "(nothing running)"
                                : absl::StrJoin(stopped, " "),
                commands.empty() ? "-" : absl::StrJoin(commands, " "),
                ShortText(absl::StrJoin(errors, "; "), 100)});
      hj["results"] = ProtoJson(r.value)["results"];
      hj["commands"] = ProtoJson(r.value)["commands"];
      if (fence) hj["fenced"] = true;
      if (!errors.empty()) hj["outcome"] = "failed";
    }
    outcomes.push_back(o);
    j.push_back(hj);
  }
  Table& table = t;
  if (ctx.json()) {
    ctx.out() << j.dump(2) << "\n";
  } else {
    ctx.out() << table.Render() << std::flush;
    for (const auto& [host, f] : failures) {
      ctx.err() << host << ": " << HostOutcomeName(f.first) << ": "
                << f.second.message() << "\n";
    }
  }
  return ctx.interrupted() ? kExitInterrupted : ExitFor(outcomes);
}

int UnfenceCommand(CliContext& ctx) {
  auto results = ctx.Fan<v1::FenceState>(
      [](AgentClient& c, const Host&, absl::Time d) { return c.Unfence(d); });
  Table t({"HOST", "RESULT", "FENCE"});
  json j = json::array();
  for (const auto& r : results) {
    json hj = CliContext::HostJson(r.host, r.outcome, r.status, r.took);
    t.AddRow({r.host.name, HostOutcomeName(r.outcome),
              r.outcome == HostOutcome::kOk
                  ? (r.value.fenced() ? FenceText(r.value) : "lifted")
                  : ShortText(std::string(r.status.message()), 100)});
    j.push_back(hj);
  }
  return ctx.Finish(results, t, j);
}

int KeepAliveCommand(CliContext& ctx) {
  v1::KeepAliveRequest req;
  req.set_run_id(ctx.args().Get("run"));
  req.set_lease_holder(ctx.args().Get("holder"));
  if (req.run_id().empty() && req.lease_holder().empty()) {
    ctx.err() << "labtrace keepalive: give --run R or --holder H\n";
    return kExitUsage;
  }
  auto results = ctx.Fan<v1::KeepAliveResponse>(
      [&req](AgentClient& c, const Host&, absl::Time d) {
        return c.KeepAlive(req, d);
      });
  Table t({"HOST", "RESULT", "RENEWED", "UNTIL"});
  json j = json::array();
  for (const auto& r : results) {
    json hj = CliContext::HostJson(r.host, r.outcome, r.status, r.took);
    if (r.outcome != HostOutcome::kOk) {
      t.AddRow({r.host.name, HostOutcomeName(r.outcome), "",
                ShortText(std::string(r.status.message()), 100)});
    } else {
      t.AddRow({r.host.name, "ok",
                r.value.renewed().empty() ? "(none)"
                                          : absl::StrJoin(r.value.renewed(), " "),
                r.value.has_expires_at()
                    ? Rfc3339(FromProtoTimestamp(r.value.expires_at()))
                    : "-"});
      hj["keepalive"] = ProtoJson(r.value);
    }
    j.push_back(hj);
  }
  return ctx.Finish(results, t, j);
}

}  // namespace labtrace::controller
