#include "agent/session/command_runner.h"

#include <algorithm>
#include <chrono>
#include <fstream>

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
// How often a running program is checked for cancellation.
constexpr std::chrono::milliseconds kPoll(100);

}  // namespace

CommandRunner::CommandRunner(ExecConfig config, std::string hostname,
                             SessionManager* manager, ArtifactStore* store,
                             std::function<absl::Time()> clock)
    : config_(std::move(config)),
      hostname_(std::move(hostname)),
      manager_(manager),
      store_(store),
      clock_(std::move(clock)) {}

int CommandRunner::running() const {
  absl::MutexLock lock(&mu_);
  return static_cast<int>(running_.size());
}

std::vector<v1::StoppedCommand> CommandRunner::KillAll(const std::string& why,
                                                       absl::Duration wait) {
  std::vector<v1::StoppedCommand> out;
  absl::MutexLock lock(&mu_);
  for (auto& [key, r] : running_) {
    if (r->kill.load()) continue;
    r->kill_reason = why;
    r->kill.store(true);
    v1::StoppedCommand c;
    c.set_name(r->name);
    c.set_program(r->program);
    c.set_pid(r->pid);
    out.push_back(std::move(c));
    spdlog::warn("RunCommand {}: ending {} (pid {}) for {}", r->name,
                 r->program, r->pid, why);
  }
  // Their Run()s notice within kPoll and kill; wait until the programs are
  // gone (not for their logs and traces to be stored).
  auto gone = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    for (const auto& [key, r] : running_) {
      if (r->kill.load() && !r->ended) return false;
    }
    return true;
  };
  mu_.AwaitWithTimeout(absl::Condition(&gone), wait);
  return out;
}

absl::StatusOr<v1::RunCommandResponse> CommandRunner::Run(
    const v1::RunCommandRequest& req, const std::function<bool()>& cancelled,
    const std::function<void(const std::filesystem::path&)>& on_poll) {
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
  LABTRACE_RETURN_IF_ERROR(manager_->CheckNotFenced("RunCommand"));
  const v1::StartTraceRequest& trace = req.trace();
  LABTRACE_RETURN_IF_ERROR(
      ValidateName("step name (trace.name)", trace.name()));
  LABTRACE_RETURN_IF_ERROR(ValidateOptionalName("run_id", trace.run_id()));
  LABTRACE_RETURN_IF_ERROR(ValidateOptionalName("phase", trace.phase()));
  absl::Duration timeout = config_.max_timeout;
  if (req.has_timeout()) {
    absl::Duration t = FromProtoDuration(req.timeout());
    if (t <= absl::ZeroDuration() || t > config_.max_timeout) {
      return absl::InvalidArgumentError(
          absl::StrCat("timeout must be positive and at most ",
                       absl::FormatDuration(config_.max_timeout)));
    }
    timeout = t;
  }
  // The log is written into a work dir as the program runs.
  LABTRACE_ASSIGN_OR_RETURN(std::filesystem::path dir,
                            store_->CreateWorkDir(trace.name()));
  const std::filesystem::path log_file = dir / "output.log";

  v1::RunCommandResponse resp;
  bool traced = false;
  if (!trace.profile().empty()) {
    absl::StatusOr<v1::TraceSession> s = manager_->Start(trace);
    if (s.ok() && s->state() == v1::TRACE_STATE_STARTING) {
      // A synchronised start: the program runs once the trace runs.
      s = manager_->AwaitStarted(trace.name());
      if (absl::IsAborted(s.status())) {
        store_->RemoveWorkDir(dir);
        return s.status();  // Withdrawn by a stop: nothing runs.
      }
    }
    if (!s.ok()) {
      if (req.strict()) {
        store_->RemoveWorkDir(dir);
        return s.status();
      }
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
  opts.output_cap = kTailBytes * 4;
  opts.output_path = PathToUtf8(log_file);
  opts.output_file_cap = config_.max_output_bytes;
  // Dies with the agent, kill -9 included (the journal names it too, for
  // Windows' sake and in case it escaped).
  opts.die_with_parent = true;
  const absl::Time started = clock_();
  subprocess::Process process;
  std::string error;
  std::optional<subprocess::Result> result;
  spdlog::info("RunCommand {}: running {}", trace.name(),
               absl::StrJoin(opts.argv, " "));
  auto entry = std::make_shared<Running>();
  if (!process.Start(opts, &error)) {
    resp.set_error(absl::StrCat("cannot start ", req.argv(0), ": ", error));
  } else {
    resp.set_started(true);
    entry->name = trace.name();
    entry->program = req.argv(0);
    entry->pid = process.pid();
    {
      absl::MutexLock lock(&mu_);
      running_[entry.get()] = entry;
    }
    manager_->TrackCommand(entry->name, entry->pid, entry->program);
    const absl::Time deadline = started + timeout;
    while (!result) {
      result = process.Wait(kPoll);
      if (on_poll) on_poll(log_file);
      if (result) break;
      if (entry->kill.load()) {
        result = process.Kill();
        absl::MutexLock lock(&mu_);
        resp.set_error(absl::StrCat("ended by ", entry->kill_reason,
                                    "; the program was killed"));
      } else if (cancelled()) {
        result = process.Kill();
        resp.set_error("the caller cancelled the call; the program was killed");
      } else if (clock_() >= deadline) {
        result = process.Kill(/*as_timeout=*/true);
        resp.set_timed_out(true);
        resp.set_error(absl::StrCat("killed after the timeout of ",
                                    absl::FormatDuration(timeout)));
      }
    }
    manager_->UntrackCommand(entry->pid);
    absl::MutexLock lock(&mu_);
    entry->ended = true;
  }
  const absl::Time ended = clock_();
  *resp.mutable_duration() = ToProtoDuration(ended - started);
  std::string tail;
  if (result) {
    resp.set_exit_code(result->outcome == subprocess::Outcome::kExited
                           ? result->exit_code
                           : -1);
    if (result->outcome == subprocess::Outcome::kSignaled &&
        resp.error().empty()) {
      resp.set_error(result->Describe());
    }
    tail = std::move(result->output);
    if (!result->output_file_error.empty()) {
      spdlog::warn("RunCommand {}: {}", trace.name(),
                   result->output_file_error);
    }
  } else {
    resp.set_exit_code(-1);
  }
  // What labtrace itself has to say goes at the end of the log.
  if (!resp.error().empty()) {
    std::ofstream(log_file, std::ios::app | std::ios::binary)
        << "\n[labtrace: " << resp.error() << "]\n";
    absl::StrAppend(&tail, "\n[labtrace: ", resp.error(), "]\n");
  }
  resp.set_output_tail(tail.size() > kTailBytes
                           ? tail.substr(tail.size() - kTailBytes)
                           : tail);

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
  std::error_code ec;
  if (!std::filesystem::exists(log_file, ec)) {
    std::ofstream(log_file, std::ios::binary) << tail;  // Never started.
  }
  v1::Artifact meta;
  meta.set_session_name(trace.name());
  meta.set_run_id(trace.run_id());
  meta.set_phase(trace.phase());
  for (const auto& [k, v] : trace.labels()) (*meta.mutable_labels())[k] = v;
  meta.set_backend("exec");
  meta.set_host(hostname_);
  // Named after the trace's start when there is one, so a step's trace and
  // log share a stamp: unit_tests_<stamp>.etl / unit_tests_<stamp>.log.
  *meta.mutable_start_time() = resp.session().has_start_time()
                                   ? resp.session().start_time()
                                   : ToProtoTimestamp(started);
  *meta.mutable_stop_time() = ToProtoTimestamp(ended);
  absl::StatusOr<v1::Artifact> log = store_->Add(log_file, ".log", std::move(meta));
  if (log.ok()) {
    *resp.mutable_log_artifact() = *log;
  } else {
    spdlog::error("cannot store the log of {}: {}", trace.name(),
                  log.status().ToString());
  }
  store_->RemoveWorkDir(dir);
  {
    absl::MutexLock lock(&mu_);
    running_.erase(entry.get());
  }
  return resp;
}

}  // namespace labtrace::agent
