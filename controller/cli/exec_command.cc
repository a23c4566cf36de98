// `labtrace exec NAME -- COMMAND...`: one command on the selected agents
// under its own trace (RunCommandStreamed with a trace), its output printed
// as it arrives, its exit code passed through for one host, and optionally
// the trace and log collected.

#include <mutex>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "common/file_util.h"
#include "common/names.h"
#include "common/proto_time.h"
#include "common/time_util.h"
#include "controller/cli/cli_context.h"
#include "controller/cli/commands.h"
#include "controller/fleet/exit_codes.h"
#include "controller/report/proto_json.h"

namespace labtrace::controller {
namespace {

// With several hosts, a line longer than this is printed in pieces.
constexpr std::size_t kMaxLineBytes = 64 << 10;

}  // namespace

int ExecCommand(CliContext& ctx) {
  const Args& args = ctx.args();
  const std::string name = args.positional[0];
  if (absl::Status s = ValidateName("trace name", name); !s.ok()) {
    ctx.err() << "labtrace exec: " << s.message() << "\n";
    return kExitUsage;
  }
  if (args.trailing.empty()) {
    ctx.err() << "labtrace exec: give the command after --, e.g. labtrace exec "
              << name << " -- /usr/bin/make check\n";
    return kExitUsage;
  }
  std::string run_id = args.Get("run-id");
  if (run_id.empty())
    run_id = absl::StrCat("exec-", name, "-", FileStamp(absl::Now()));
  if (absl::Status s = ValidateName("--run-id", run_id); !s.ok()) {
    ctx.err() << "labtrace exec: " << s.message() << "\n";
    return kExitUsage;
  }
  const std::string profile = args.Get("profile");
  const absl::Duration limit = ctx.fan().per_host_timeout;
  const bool several = ctx.hosts().size() > 1;
  std::mutex out_mu;

  FanOutOptions fo = ctx.fan();
  // The command's limit, plus time to start and stop the trace.
  fo.per_host_timeout = limit + absl::Minutes(5);
  auto results = FanOut<v1::RunCommandResponse>(
      ctx.hosts(), ctx.clients(), fo,
      [&](AgentClient& c, const Host& host,
          absl::Time deadline) -> absl::StatusOr<v1::RunCommandResponse> {
        v1::RunCommandRequest req;
        std::string p = profile;
        if (p.empty()) {
          // The agent's "default" profile if it has one, else its first.
          absl::StatusOr<v1::AgentInfo> info = c.GetAgentInfo(deadline);
          if (!info.ok()) return info.status();
          for (const v1::ProfileInfo& x : info->profiles()) {
            if (p.empty() || x.name() == "default") p = x.name();
          }
        }
        req.mutable_trace()->set_name(name);
        req.mutable_trace()->set_profile(p);
        req.mutable_trace()->set_run_id(run_id);
        req.mutable_trace()->set_phase("test");
        *req.mutable_trace()->mutable_max_duration() =
            ToProtoDuration(limit + absl::Minutes(5));
        for (const std::string& a : args.trailing) req.add_argv(a);
        *req.mutable_timeout() = ToProtoDuration(limit);
        // The output as it arrives: raw for one host; whole lines, prefixed
        // with the host, for several (so hosts never interleave mid-line).
        const std::string prefix =
            several ? absl::StrCat("[", host.name, "] ") : std::string();
        std::string pending;
        bool at_line_start = true;
        auto print = [&](absl::string_view piece, bool end) {
          if (ctx.json()) return;  // stdout is one JSON document.
          std::lock_guard<std::mutex> lock(out_mu);
          if (!several) {
            ctx.out() << piece;
            if (!piece.empty()) at_line_start = piece.back() == '\n';
            if (end && !at_line_start) ctx.out() << "\n";
            ctx.out().flush();
            return;
          }
          pending.append(piece.data(), piece.size());
          std::size_t start = 0;
          for (std::size_t nl;
               (nl = pending.find('\n', start)) != std::string::npos;
               start = nl + 1) {
            ctx.out() << prefix
                      << absl::string_view(pending).substr(start, nl - start)
                      << "\n";
          }
          pending.erase(0, start);
          // A line that never ends, or the end of the output.
          if (!pending.empty() && (end || pending.size() > kMaxLineBytes)) {
            ctx.out() << prefix << pending << "\n";
            pending.clear();
          }
          ctx.out().flush();
        };
        absl::StatusOr<v1::RunCommandResponse> r = c.RunCommandStreamed(
            req, deadline,
            [&](const std::string& piece) { print(piece, false); });
        print("", true);
        return r;
      });

  int code = ExitFor([&] {
    std::vector<HostOutcome> o;
    for (const auto& r : results) o.push_back(r.outcome);
    return o;
  }());
  std::vector<std::pair<Host, std::vector<v1::Artifact>>> to_collect;
  nlohmann::json j = nlohmann::json::array();
  for (const auto& r : results) {
    nlohmann::json hj = {{"host", r.host.name},
                         {"outcome", HostOutcomeName(r.outcome)},
                         {"error", std::string(r.status.message())},
                         {"run_id", run_id}};
    if (r.outcome != HostOutcome::kOk) {
      ctx.err() << r.host.name << ": " << HostOutcomeName(r.outcome) << ": "
                << r.status.message() << "\n";
      j.push_back(hj);
      continue;
    }
    const v1::RunCommandResponse& resp = r.value;
    hj["result"] = ProtoJson(resp);
    j.push_back(hj);
    std::vector<v1::Artifact> files;
    if (!resp.trace_artifact().id().empty()) {
      files.push_back(resp.trace_artifact());
      ctx.WarnAbout(r.host.name, resp.trace_artifact());
    }
    if (!resp.log_artifact().id().empty()) files.push_back(resp.log_artifact());
    if (!files.empty()) to_collect.push_back({r.host, files});
    if (!resp.trace_error().empty()) {
      ctx.err() << r.host.name << ": warning: " << resp.trace_error() << "\n";
    }
    const bool ok =
        resp.started() && resp.exit_code() == 0 && !resp.timed_out();
    if (!ok) {
      code = WorstExit(code, kExitFailed);
      ctx.err() << r.host.name << ": "
                << (!resp.error().empty()
                        ? resp.error()
                        : absl::StrCat("exited with code ", resp.exit_code()))
                << "\n";
    }
  }
  if (ctx.json()) ctx.out() << j.dump(2) << "\n";
  if (std::string dir = args.Get("collect");
      !dir.empty() && !to_collect.empty()) {
    code = WorstExit(code, ctx.CollectInto(dir, to_collect));
  }
  // One host: the command's own exit code passes through.
  if (results.size() == 1 && results[0].outcome == HostOutcome::kOk &&
      results[0].value.started() && code != kExitDataProblem) {
    const v1::RunCommandResponse& resp = results[0].value;
    if (resp.timed_out()) return kExitFailed;
    return resp.exit_code();
  }
  return ctx.interrupted() ? kExitInterrupted : code;
}

}  // namespace labtrace::controller
