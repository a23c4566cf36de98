// The commands about trace files: artifacts (list them on the agents), fetch
// (download them, resumable and verified), inspect (check local files).

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "common/file_util.h"
#include "common/names.h"
#include "common/time_util.h"
#include "common/trace_summary.h"
#include "controller/cli/cli_context.h"
#include "controller/cli/commands.h"
#include "controller/cli/egress_commands.h"
#include "controller/collect/collector.h"
#include "controller/report/proto_json.h"
#include "controller/report/provider_warning.h"

namespace labtrace::controller {
namespace {

using nlohmann::json;

absl::StatusOr<v1::ListArtifactsRequest> ArtifactFilter(const Args& args) {
  v1::ListArtifactsRequest req;
  req.set_run_id(args.Get("run"));
  req.set_name(args.Get("name"));
  if (absl::Status s = ValidateOptionalName("--run", req.run_id()); !s.ok())
    return s;
  if (absl::Status s = ValidateOptionalName("--name", req.name()); !s.ok())
    return s;
  return req;
}

}  // namespace

int ArtifactsCommand(CliContext& ctx) {
  absl::StatusOr<v1::ListArtifactsRequest> req = ArtifactFilter(ctx.args());
  if (!req.ok()) {
    ctx.err() << "labtrace artifacts: " << req.status().message() << "\n";
    return kExitUsage;
  }
  auto results = ctx.Fan<v1::ListArtifactsResponse>(
      [&](AgentClient& c, const Host&, absl::Time d) {
        return c.ListArtifacts(*req, d);
      });
  Table t({"HOST", "FILE", "SIZE", "RUN", "PHASE", "STOPPED", "WHY", "SHA256"});
  json j = json::array();
  for (const auto& r : results) {
    json hj = CliContext::HostJson(r.host, r.outcome, r.status, r.took);
    if (r.outcome != HostOutcome::kOk) {
      t.AddRow({r.host.name, HostOutcomeName(r.outcome), "", "", "", "", "",
                ShortText(std::string(r.status.message()))});
    } else {
      hj["artifacts"] = json::array();
      for (const auto& a : r.value.artifacts()) {
        t.AddRow({r.host.name, a.file_name(), HumanBytes(a.size_bytes()),
                  a.run_id(), a.phase(),
                  Rfc3339(absl::FromUnixSeconds(a.stop_time().seconds())),
                  a.salvaged() ? "salvaged" : a.stop_reason(),
                  a.sha256().substr(0, 12)});
        hj["artifacts"].push_back(ProtoJson(a));
        ctx.WarnAbout(r.host.name, a);
      }
    }
    j.push_back(hj);
  }
  return ctx.Finish(results, t, j);
}

int FetchCommand(CliContext& ctx) {
  if (ctx.args().HasValue("from")) return FetchFromObjectStore(ctx);
  const std::string out = ctx.args().Get("out");
  absl::StatusOr<v1::ListArtifactsRequest> req = ArtifactFilter(ctx.args());
  if ((out.empty() && !ctx.args().HasValue("egress")) || !req.ok()) {
    ctx.err() << "labtrace fetch: "
              << (out.empty() ? "--out DIR is required"
                              : std::string(req.status().message()))
              << "\n";
    return kExitUsage;
  }
  FanOutOptions list_opts = ctx.fan();
  list_opts.per_host_timeout = absl::Seconds(30);
  auto lists = FanOut<v1::ListArtifactsResponse>(
      ctx.hosts(), ctx.clients(), list_opts,
      [&](AgentClient& c, const Host&, absl::Time d) {
        return c.ListArtifacts(*req, d);
      });
  std::vector<std::pair<Host, std::vector<v1::Artifact>>> work;
  std::vector<HostOutcome> outcomes;
  for (const auto& r : lists) {
    outcomes.push_back(r.outcome);
    if (r.outcome != HostOutcome::kOk) {
      ctx.err() << r.host.name << ": " << HostOutcomeName(r.outcome) << ": "
                << r.status.message() << "\n";
      continue;
    }
    work.push_back(
        {r.host, {r.value.artifacts().begin(), r.value.artifacts().end()}});
  }
  if (ctx.args().HasValue("egress")) {
    return FetchToObjectStore(ctx, work, req->run_id(), ExitFor(outcomes));
  }
  CollectOptions co;
  co.dir = req->run_id().empty() ? PathFromUtf8(out)
                                 : PathFromUtf8(out) / req->run_id();
  co.parallel = ctx.fan().parallel;
  co.per_file_timeout = ctx.fan().per_host_timeout;
  co.show_progress = ctx.env().err_is_terminal && !ctx.json();
  std::vector<CollectedFile> files = CollectArtifacts(work, ctx.clients(), co);
  Table t({"HOST", "FILE", "SIZE", "STATUS", "PATH"});
  json j = json::array();
  int code = ExitFor(outcomes);
  std::uint64_t total = 0;
  for (const CollectedFile& f : files) {
    t.AddRow({f.host, f.artifact.file_name(),
              HumanBytes(f.artifact.size_bytes()), f.status,
              f.ok() ? PathToUtf8(f.path) : ShortText(f.error, 100)});
    j.push_back({{"host", f.host},
                 {"file", PathToUtf8(f.path)},
                 {"status", f.status},
                 {"error", f.error},
                 {"artifact", ProtoJson(f.artifact)}});
    if (f.ok()) total += f.artifact.size_bytes();
    ctx.WarnAbout(f.host, f.artifact);
    if (f.status == "digest_mismatch") code = WorstExit(code, kExitDataProblem);
    if (f.status == "failed") code = WorstExit(code, kExitFailed);
  }
  if (ctx.json()) {
    ctx.out() << j.dump(2) << "\n";
  } else {
    ctx.out() << t.Render();
    ctx.err() << files.size() << " file(s), " << HumanBytes(total) << " in "
              << PathToUtf8(co.dir) << "\n";
  }
  return ctx.interrupted() ? kExitInterrupted : code;
}

namespace {

// inspect --providers: one file's providers, largest first.
std::string ProviderTable(const std::string& path, const v1::TraceSummary& x,
                          const std::vector<v1::ProviderStat>& providers) {
  if (x.format() != "etl") {
    return absl::StrCat("\n", path, ": no providers (", x.format(),
                        " file; providers are an ETL notion)\n");
  }
  std::string out = absl::StrCat(
      "\n", path, ": ", providers.size(), " provider(s), ", x.record_count(),
      x.record_count_complete() ? "" : "+", " events, ",
      HumanBytes(x.record_bytes()), " of records; lost: ", x.events_lost(),
      " events, ", x.buffers_lost(), " buffers\n");
  Table t({"PROVIDER", "SOURCE", "EVENTS", "BYTES", "%"});
  for (const v1::ProviderStat& p : providers) {
    const double share = x.record_bytes() == 0
                             ? 0.0
                             : 100.0 * static_cast<double>(p.bytes()) /
                                   static_cast<double>(x.record_bytes());
    t.AddRow({!p.name().empty() ? p.name() : p.guid(), p.source(),
              absl::StrCat(p.events()), HumanBytes(p.bytes()),
              absl::StrFormat("%.1f%%", share)});
  }
  absl::StrAppend(&out, t.Render());
  return out;
}

}  // namespace

int InspectCommand(CliContext& ctx) {
  Table t({"FILE", "FORMAT", "SIZE", "SESSION", "DURATION", "RECORDS", "LOST",
           "BUFFERS", "OS", "CPUS", "MODE", "PROBLEMS"});
  json j = json::array();
  int code = kExitOk;
  const bool with_providers = ctx.args().Has("providers");
  std::string provider_tables;
  for (const std::string& path : ctx.args().positional) {
    std::vector<v1::ProviderStat> providers;
    absl::StatusOr<std::optional<v1::TraceSummary>> s = SummarizeTraceFile(
        PathFromUtf8(path), with_providers ? &providers : nullptr);
    if (!s.ok() || !s->has_value()) {
      const std::string why =
          !s.ok() ? std::string(s.status().message())
                  : "not a trace file this tool reads (.etl, .perf.data)";
      ctx.err() << "labtrace inspect: " << path << ": " << why << "\n";
      j.push_back({{"file", path}, {"error", why}});
      code = WorstExit(code, kExitUsage);
      continue;
    }
    const v1::TraceSummary& x = **s;
    if (!x.problems().empty()) code = WorstExit(code, kExitDataProblem);
    json entry = {{"file", path}, {"summary", ProtoJson(x)}};
    if (with_providers) {
      json list = json::array();
      for (const v1::ProviderStat& p : providers) list.push_back(ProtoJson(p));
      entry["providers"] = std::move(list);
      provider_tables += ProviderTable(path, x, providers);
    }
    j.push_back(std::move(entry));
    if (std::optional<std::string> w = ProviderWarning(x)) {
      ctx.err() << "warning: " << path << ": " << *w << "\n";
    }
    const bool etl = x.format() == "etl";
    t.AddRow(
        {path, x.format(), HumanBytes(x.file_size()), x.logger_name(),
         x.has_duration() ? DurationText(x.duration()) : "-",
         absl::StrCat(x.record_count(), x.record_count_complete() ? "" : "+"),
         etl ? absl::StrCat(x.events_lost(), " ev, ", x.buffers_lost(), " buf")
             : absl::StrCat(x.events_lost(), " ev"),
         etl ? absl::StrCat(x.buffers_found(), "/", x.buffers_written()) : "-",
         x.os_version(),
         x.processor_count() > 0 ? std::to_string(x.processor_count()) : "",
         absl::StrJoin(x.log_file_mode_flags(), "|"),
         x.problems().empty() ? "ok" : absl::StrJoin(x.problems(), "; ")});
  }
  if (ctx.json()) {
    ctx.out() << j.dump(2) << "\n";
  } else {
    ctx.out() << t.Render() << provider_tables;
  }
  return code;
}

}  // namespace labtrace::controller
