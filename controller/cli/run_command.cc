// `labtrace run PLAN`: a lab run (controller/plan/plan_runner.h) with its
// summary, and the lease keeper that makes a vanished controller stop the
// run's traces.

#include "absl/strings/str_cat.h"
#include "common/file_util.h"
#include "common/names.h"
#include "controller/cli/cli_context.h"
#include "controller/cli/commands.h"
#include "controller/cli/egress_commands.h"
#include "controller/cli/run_summary.h"
#include "controller/fleet/exit_codes.h"
#include "controller/report/html_report.h"
#include "controller/report/junit.h"
#include "nlohmann/json.hpp"

namespace labtrace::controller {

int RunCommand(CliContext& ctx) {
  const Args& args = ctx.args();
  const std::string out = args.Get("out");
  if (out.empty()) {
    ctx.err() << "labtrace run: --out DIR is required\n";
    return kExitUsage;
  }
  if (!ctx.plan()) {
    absl::StatusOr<Plan> plan = LoadPlan(args.positional[0]);
    if (!plan.ok()) {
      ctx.err() << "labtrace: " << plan.status().message() << "\n";
      return kExitUsage;
    }
    ctx.set_plan(*plan);
  }
  PlanRunOptions o;
  o.out_dir = PathFromUtf8(out);
  o.run_id = args.Get("run-id");
  if (!o.run_id.empty() && !IsValidName(o.run_id)) {
    ctx.err() << "labtrace run: " << ValidateName("--run-id", o.run_id).message()
              << "\n";
    return kExitUsage;
  }
  if (std::string l = args.Get("lease"); !l.empty()) {
    if (!absl::ParseDuration(l, &o.lease) || o.lease < absl::ZeroDuration() ||
        (o.lease > absl::ZeroDuration() && o.lease < absl::Seconds(3))) {
      ctx.err() << "labtrace run: bad --lease \"" << l
                << "\"; use 0 (no lease) or at least 3s, e.g. 60s\n";
      return kExitUsage;
    }
  }
  o.parallel = ctx.fan().parallel;
  o.rpc_timeout = ctx.fan().per_host_timeout;
  o.show_progress = ctx.env().err_is_terminal && !ctx.json();
  o.fail_on_lost_events = args.Has("fail-on-lost-events");
  o.log = &ctx.err();
  o.command_line = ctx.command_line();
  std::unique_ptr<S3Client> s3;
  if (args.HasValue("egress")) {
    absl::StatusOr<std::unique_ptr<S3Client>> opened =
        OpenEgress(ctx, args.Get("egress"), &o.egress_location);
    if (!opened.ok()) {
      ctx.err() << "labtrace run: --egress: " << opened.status().message()
                << "\n";
      return kExitUsage;
    }
    s3 = std::move(*opened);
    o.egress = s3.get();
  }
  PlanRunner runner(*ctx.plan(), ctx.hosts(), &ctx.clients(), &ctx.canceller(),
                    o);
  ctx.SetRunner(&runner);
  RunResult r = runner.Run();
  ctx.SetRunner(nullptr);
  int code = r.exit_code;
  // The HTML report, from the manifest just written. A report that cannot
  // be written is a warning: the run's outcome stands.
  absl::StatusOr<std::filesystem::path> report = WriteHtmlReport(r.run_dir);
  if (!report.ok()) {
    ctx.err() << "labtrace run: warning: no " << kReportFileName << ": "
              << report.status().message() << "\n";
  } else if (s3 != nullptr) {
    // Beside the manifest in the store (its links are relative, like the
    // objects' keys below the run's prefix).
    const std::string key = o.egress_location.Key(
        absl::StrCat(r.run_id, "/", kReportFileName));
    absl::StatusOr<std::string> text = ReadFile(*report);
    absl::Status put =
        text.ok() ? s3->PutSmall(o.egress_location.bucket, key, *text,
                                 "text/html; charset=utf-8")
                  : text.status();
    if (!put.ok()) {
      ctx.err() << "labtrace run: warning: " << kReportFileName
                << " not uploaded to " << o.egress_location.Url(key) << ": "
                << put.message() << "\n";
    }
  }
  if (const std::string junit = args.Get("junit"); !junit.empty()) {
    absl::StatusOr<std::string> text = ReadFile(r.run_dir / "manifest.json");
    nlohmann::json m = text.ok() ? nlohmann::json::parse(*text, nullptr, false)
                                 : nlohmann::json();
    absl::Status w =
        m.is_object() ? WriteJUnit(m, r.run_dir, PathFromUtf8(junit))
                      : absl::FailedPreconditionError("no readable manifest");
    if (!w.ok()) {
      ctx.err() << "labtrace run: cannot write --junit " << junit << ": "
                << w.message() << "\n";
      code = WorstExit(code, kExitFailed);
    }
  }
  if (ctx.json()) {
    absl::StatusOr<std::string> m = ReadFile(r.run_dir / "manifest.json");
    ctx.out() << (m.ok() ? *m : "{}\n");
    // stdout stays one JSON document.
    if (report.ok()) ctx.err() << "report: " << PathToUtf8(*report) << "\n";
  } else {
    PrintRunSummary(r, ctx.out());
    if (!args.Get("junit").empty()) {
      ctx.out() << "junit:     " << args.Get("junit") << "\n";
    }
    if (report.ok()) ctx.out() << "report:    " << PathToUtf8(*report) << "\n";
  }
  return code;
}

}  // namespace labtrace::controller
