#include "agent/session/command_runner.h"

#include <algorithm>
#include <chrono>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/file_util.h"
#include "common/names.h"
#include "common/proto_time.h"
#include "common/status_macros.h"
#include "common/subprocess.h"
#include "spdlog/spdlog.h"

namespace labtrace::agent {
namespace {

constexpr std::size_t kTailBytes = 4096;

}  // namespace

CommandRunner::CommandRunner(ExecConfig config, std::string hostname,
                             SessionManager* manager, ArtifactStore* store)
    : config_(std::move(config)),
      hostname_(std::move(hostname)),
      manager_(manager),
      store_(store) {}

absl::StatusOr<v1::RunCommandResponse> CommandRunner::Run(
    const v1::RunCommandRequest& req, const std::function<bool()>& cancelled) {
  if (!config_.enabled) {
    return absl::FailedPreconditionError(
        "running commands is disabled on this agent (set exec.enabled and "
        "exec.allow in its config, or start it with --exec-allow PROGRAM)");
  }
  if (req.argv_size() == 0 || req.argv(0).empty()) {
    return absl::InvalidArgumentError("argv is empty: name the program to run");
  }
  if (std::find(config_.allow.begin(), config_.allow.end(), req.argv(0)) ==
      config_.allow.end()) {
    return absl::PermissionDeniedError(
        absl::StrCat("program ", QuoteForMessage(req.argv(0)),
                     " is not on this agent's allow-list (exec.allow)"));
  }
  const v1::StartTraceRequest& trace = req.trace();
  LABTRACE_RETURN_IF_ERROR(
      ValidateName("step name (trace.name)", trace.name()));
  LABTRACE_RETURN_IF_ERROR(ValidateOptionalName("run_id", trace.run_id()));
  LABTRACE_RETURN_IF_ERROR(ValidateOptionalName("phase", trace.phase()));
  absl::Duration timeout = config_.max_timeout;
  if (req.has_timeout()) {
    absl::Duration t = absl::Seconds(req.timeout().seconds()) +
                       absl::Nanoseconds(req.timeout().nanos());
    if (t <= absl::ZeroDuration() || t > config_.max_timeout) {
      return absl::InvalidArgumentError(
          absl::StrCat("timeout must be positive and at most ",
                       absl::FormatDuration(config_.max_timeout)));
    }
    timeout = t;
  }

  v1::RunCommandResponse resp;
  bool traced = false;
  if (!trace.profile().empty()) {
    absl::StatusOr<v1::TraceSession> s = manager_->Start(trace);
    if (!s.ok()) {
      if (req.strict()) return s.status();
      resp.set_trace_error(
          absl::StrCat("trace did not start: ", s.status().ToString()));
      spdlog::warn("RunCommand {}: {}; running the program anyway",
                   trace.name(), resp.trace_error());
    } else {
      traced = true;
    }
  }

  subprocess::Options opts;
  opts.argv.assign(req.argv().begin(), req.argv().end());
  opts.output_cap = config_.max_output_bytes;
  const absl::Time started = absl::Now();
  subprocess::Process process;
  std::string error;
  std::optional<subprocess::Result> result;
  spdlog::info("RunCommand {}: running {}", trace.name(),
               absl::StrJoin(opts.argv, " "));
  if (!process.Start(opts, &error)) {
    resp.set_error(absl::StrCat("cannot start ", req.argv(0), ": ", error));
  } else {
    resp.set_started(true);
    const absl::Time deadline = started + timeout;
    while (!result) {
      result = process.Wait(std::chrono::milliseconds(200));
      if (result) break;
      if (cancelled()) {
        result = process.Kill();
        resp.set_error("the caller cancelled the call; the program was killed");
      } else if (absl::Now() >= deadline) {
        result = process.Kill(/*as_timeout=*/true);
        resp.set_timed_out(true);
        resp.set_error(absl::StrCat("killed after the timeout of ",
                                    absl::FormatDuration(timeout)));
      }
    }
  }
  const absl::Time ended = absl::Now();
  const absl::Duration ran = ended - started;
  resp.mutable_duration()->set_seconds(absl::ToInt64Seconds(ran));
  resp.mutable_duration()->set_nanos(
      static_cast<std::int32_t>(absl::ToInt64Nanoseconds(
          ran - absl::Seconds(absl::ToInt64Seconds(ran)))));
  std::string output;
  if (result) {
    resp.set_exit_code(result->outcome == subprocess::Outcome::kExited
                           ? result->exit_code
                           : -1);
    if (result->outcome == subprocess::Outcome::kSignaled &&
        resp.error().empty()) {
      resp.set_error(result->Describe());
    }
    output = std::move(result->output);
    if (result->output_truncated) {
      output.insert(0, absl::StrCat("[labtrace: output cut to its last ",
                                    config_.max_output_bytes, " bytes]\n"));
    }
  } else {
    resp.set_exit_code(-1);
    output = resp.error() + "\n";
  }
  resp.set_output_tail(output.size() > kTailBytes
                           ? output.substr(output.size() - kTailBytes)
                           : output);

  if (traced) {
    absl::StatusOr<v1::StopTraceResponse> stopped =
        manager_->Stop(trace.name());
    if (stopped.ok()) {
      *resp.mutable_session() = stopped->session();
      *resp.mutable_trace_artifact() = stopped->artifact();
    } else {
      resp.set_trace_error(
          absl::StrCat("trace did not stop: ", stopped.status().ToString()));
      if (absl::StatusOr<v1::TraceSession> s = manager_->Get(trace.name());
          s.ok()) {
        *resp.mutable_session() = *s;
      }
    }
  }

  // The output as an artifact.
  absl::StatusOr<std::filesystem::path> dir =
      store_->CreateWorkDir(trace.name());
  if (dir.ok()) {
    const std::filesystem::path file = *dir / "output.log";
    absl::Status w = WriteFileAtomically(file, output);
    if (w.ok()) {
      v1::Artifact meta;
      meta.set_session_name(trace.name());
      meta.set_run_id(trace.run_id());
      meta.set_phase(trace.phase());
      for (const auto& [k, v] : trace.labels()) (*meta.mutable_labels())[k] = v;
      meta.set_backend("exec");
      meta.set_host(hostname_);
      // Named after the trace's start when there is one, so a step's trace
      // and log share a stamp: unit_tests_<stamp>.etl / unit_tests_<stamp>.log.
      *meta.mutable_start_time() = resp.session().has_start_time()
                                       ? resp.session().start_time()
                                       : ToProtoTimestamp(started);
      *meta.mutable_stop_time() = ToProtoTimestamp(ended);
      absl::StatusOr<v1::Artifact> log =
          store_->Add(file, ".log", std::move(meta));
      if (log.ok()) {
        *resp.mutable_log_artifact() = *log;
      } else {
        spdlog::error("cannot store the log of {}: {}", trace.name(),
                      log.status().ToString());
      }
    }
    store_->RemoveWorkDir(*dir);
  }
  return resp;
}

}  // namespace labtrace::agent
