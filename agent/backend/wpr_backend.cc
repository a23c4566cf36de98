#include "agent/backend/wpr_backend.h"

#include <algorithm>
#include <atomic>
#include <set>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "common/etw_sessions.h"
#include "common/file_util.h"
#include "common/status_macros.h"
#include "spdlog/spdlog.h"

namespace labtrace::agent {
namespace {

constexpr absl::string_view kEmbeddedPrefix = "embedded:";
constexpr std::size_t kErrorTailBytes = 1500;

// wpr's words for an error message: its lines, trimmed, without the
// two-line banner every invocation prints, blank lines, or the message
// wpr repeats after the error code; joined with "; ", the last part only.
std::string OutputTail(const std::string& output) {
  std::vector<std::string> lines;
  for (absl::string_view line : absl::StrSplit(output, '\n')) {
    line = absl::StripAsciiWhitespace(line);
    // Progress lines: "Press Ctrl+C to cancel...", "42%  [=====    ]".
    const bool progress =
        absl::StartsWith(line, "Press Ctrl+C") ||
        (!line.empty() && absl::ascii_isdigit(line[0]) &&
         absl::StrContains(line, "%") && absl::EndsWith(line, "]"));
    if (line.empty() || progress ||
        absl::StartsWith(line, "Microsoft Windows Performance Recorder") ||
        absl::StartsWith(line, "Copyright (c)") ||
        std::find(lines.begin(), lines.end(), line) != lines.end()) {
      continue;
    }
    lines.emplace_back(line);
  }
  std::string out = absl::StrJoin(lines, "; ");
  for (char& c : out) {
    if (c == '\t' || c == '\r') c = ' ';
  }
  if (out.size() > kErrorTailBytes) {
    out = "..." + out.substr(out.size() - kErrorTailBytes);
  }
  return out;
}

std::int64_t DirectoryBytes(const std::filesystem::path& dir) {
  std::error_code ec;
  std::int64_t total = 0;
  for (auto it = std::filesystem::recursive_directory_iterator(dir, ec);
       !ec && it != std::filesystem::recursive_directory_iterator();
       it.increment(ec)) {
    std::error_code size_ec;
    if (it->is_regular_file(size_ec)) {
      auto s = it->file_size(size_ec);
      if (!size_ec) total += static_cast<std::int64_t>(s);
    }
  }
  return total;
}

class WprSession final : public BackendSession {
 public:
  WprSession(WprBackend* backend, BackendStartRequest request)
      : backend_(backend), request_(std::move(request)) {}

  absl::StatusOr<std::filesystem::path> Stop() override {
    const std::filesystem::path out =
        request_.work_dir / (request_.session_name + ".etl");
    const std::string instance = WprInstanceName(request_.session_name);
    const WprConfig& cfg = backend_->options().config;
    subprocess::Result r = backend_->RunWpr(
        backend_->StopArgv(request_.session_name, out), cfg.stop_timeout);
    if (r.ok()) {
      std::error_code ec;
      if (!std::filesystem::is_regular_file(out, ec)) {
        return absl::InternalError(absl::StrCat(
            "wpr -stop (instance ", instance,
            ") reported success but wrote no ", PathToUtf8(out),
            "; output: ", OutputTail(r.output)));
      }
      return out;
    }
    // The stop failed (hung, disk full, a merge error): a failed stop must
    // never leave the ETW session recording. Cancel the instance; if even
    // that fails, StillRecording() tells the session manager to retry.
    const absl::Status stop =
        r.outcome == subprocess::Outcome::kTimedOut
            ? absl::AbortedError(absl::StrCat(
                  "wpr -stop (instance ", instance, ") did not finish within ",
                  absl::FormatDuration(cfg.stop_timeout),
                  " and was killed; output: ", OutputTail(r.output)))
            : WprResultToStatus("-stop", instance, r);
    const absl::Status cancel = Cancel();
    return absl::Status(
        stop.code(),
        absl::StrCat(stop.message(), "; then wpr -cancel ",
                     cancel.ok() ? std::string("succeeded")
                                 : absl::StrCat("also failed: ",
                                                cancel.message(),
                                                " (the instance may still "
                                                "record; cancel the trace to "
                                                "retry)")));
  }

  absl::Status Cancel() override {
    const std::string instance = WprInstanceName(request_.session_name);
    subprocess::Result r =
        backend_->RunWpr(backend_->CancelArgv(request_.session_name),
                         backend_->options().config.cancel_timeout);
    // Already gone is what we wanted.
    absl::Status s = ParseWprHresult(r) == kWprNoProfilesRunning
                         ? absl::OkStatus()
                         : WprResultToStatus("-cancel", instance, r);
    still_recording_.store(!s.ok());
    return s;
  }

  std::int64_t BytesRecorded() const override {
    // In file mode wpr writes into -recordtempto (our work dir) as it goes.
    if (request_.mode != v1::TRACE_MODE_FILE) return -1;
    return DirectoryBytes(request_.work_dir);
  }

  std::string RecoveryHandle() const override {
    return WprInstanceName(request_.session_name);
  }

  bool StillRecording() const override { return still_recording_.load(); }

 private:
  WprBackend* const backend_;
  const BackendStartRequest request_;
  std::atomic<bool> still_recording_{false};
};

}  // namespace

std::optional<std::uint32_t> ParseWprHresult(const subprocess::Result& result) {
  // wpr prints "Error code: 0xc5583000" (case varies between versions).
  const std::string lower = absl::AsciiStrToLower(result.output);
  std::size_t pos = lower.rfind("error code:");
  if (pos != std::string::npos) {
    absl::string_view rest = absl::string_view(lower).substr(pos + 11);
    rest = absl::StripLeadingAsciiWhitespace(rest);
    if (absl::ConsumePrefix(&rest, "0x")) {
      std::size_t n = 0;
      while (n < rest.size() && n < 8 && absl::ascii_isxdigit(rest[n])) ++n;
      std::uint32_t v = 0;
      if (n > 0 && absl::SimpleHexAtoi(rest.substr(0, n), &v)) return v;
    }
  }
  if (result.outcome == subprocess::Outcome::kExited && result.exit_code != 0) {
    // On Windows the exit code is the HRESULT. On POSIX it is 8 bits, which
    // is only an HRESULT if it has the failure bit: usually it does not.
    std::uint32_t code = static_cast<std::uint32_t>(result.exit_code);
    if (code & 0x80000000u) return code;
  }
  return std::nullopt;
}

absl::Status WprResultToStatus(absl::string_view operation,
                               const std::string& instance,
                               const subprocess::Result& result) {
  if (result.ok()) return absl::OkStatus();
  const std::string what =
      absl::StrCat("wpr ", operation, " (instance ", instance, ")");
  switch (result.outcome) {
    case subprocess::Outcome::kSpawnFailed:
      return absl::FailedPreconditionError(absl::StrCat(
          what, " could not run: ", result.error,
          ". Is the Windows Performance Toolkit installed? Set wpr.path in the "
          "agent config or --wpr-path"));
    case subprocess::Outcome::kTimedOut:
      return absl::AbortedError(
          absl::StrCat(what, " ", result.Describe(),
                       "; output: ", OutputTail(result.output)));
    case subprocess::Outcome::kSignaled:
    case subprocess::Outcome::kExited:
      break;
  }
  std::optional<std::uint32_t> hr = ParseWprHresult(result);
  std::string msg = absl::StrCat(what, " failed: ", result.Describe());
  if (hr) absl::StrAppend(&msg, absl::StrFormat(", HRESULT 0x%08x", *hr));
  absl::StrAppend(&msg, ": ", OutputTail(result.output));
  if (!hr) return absl::InternalError(msg);
  switch (*hr) {
    case kWprNoProfilesRunning:
      return absl::FailedPreconditionError(
          absl::StrCat(msg, " (the WPR instance is not running)"));
    case kWprAlreadyRunning:
      return absl::AlreadyExistsError(
          absl::StrCat(msg, " (a WPR instance with this name already runs)"));
    case kWprInvalidProfileSchema:
      return absl::InvalidArgumentError(
          absl::StrCat(msg, " (the profile file is not a valid WPR profile)"));
    case kWprTooManySessions:
      return absl::ResourceExhaustedError(absl::StrCat(
          msg, " (too many ETW sessions on this machine; stop some traces)"));
    case kWprNotElevated:
      return absl::PermissionDeniedError(absl::StrCat(
          msg,
          " (wpr needs administrator rights: run the agent elevated or as "
          "the labtrace-agent service, which runs as LocalSystem)"));
    default:
      return absl::InternalError(msg);
  }
}

std::string WprInstanceName(const std::string& session_name) {
  return "labtrace_" + session_name;
}

WprBackend::WprBackend(WprBackendOptions options)
    : options_(std::move(options)) {}

absl::Status WprBackend::CheckAvailable(std::string* detail) const {
  std::string path = subprocess::FindProgram(options_.config.path);
  if (path.empty()) {
    return absl::FailedPreconditionError(absl::StrCat(
        "wpr executable \"", options_.config.path,
        "\" not found (install the Windows Performance Toolkit, or set "
        "wpr.path / --wpr-path)"));
  }
  if (detail != nullptr) *detail = path;
  return absl::OkStatus();
}

std::string WprBackend::ResolveProfile(const std::string& profile) const {
  absl::string_view p = profile;
  if (absl::ConsumePrefix(&p, kEmbeddedPrefix)) {
    return PathToUtf8(options_.embedded_profiles_dir / PathFromUtf8(p));
  }
  return profile;
}

std::vector<std::string> WprBackend::StartArgv(
    const BackendStartRequest& request) const {
  std::vector<std::string> argv = {options_.config.path};
  for (const std::string& p : request.profile.args) {
    argv.push_back("-start");
    argv.push_back(ResolveProfile(p));
  }
  if (request.mode == v1::TRACE_MODE_FILE) {
    argv.push_back("-filemode");
    // Keep wpr's temp files on the data volume, in this session's work dir.
    argv.push_back("-recordtempto");
    argv.push_back(PathToUtf8(request.work_dir));
  }
  argv.push_back("-instancename");
  argv.push_back(WprInstanceName(request.session_name));
  return argv;
}

std::vector<std::string> WprBackend::StopArgv(
    const std::string& session_name, const std::filesystem::path& out) const {
  std::vector<std::string> argv = {options_.config.path, "-stop",
                                   PathToUtf8(out)};
  if (options_.config.skip_pdb_gen) argv.push_back("-skipPdbGen");
  // wpr's documentation: -instancename must be the last parameter.
  argv.push_back("-instancename");
  argv.push_back(WprInstanceName(session_name));
  return argv;
}

std::vector<std::string> WprBackend::CancelArgv(
    const std::string& session_name) const {
  return {options_.config.path, "-cancel", "-instancename",
          WprInstanceName(session_name)};
}

std::vector<std::string> WprBackend::StatusArgv(
    const std::string& session_name) const {
  return {options_.config.path, "-status", "-instancename",
          WprInstanceName(session_name)};
}

subprocess::Result WprBackend::RunWpr(std::vector<std::string> argv,
                                      absl::Duration timeout) const {
  subprocess::Options opts;
  opts.argv = std::move(argv);
  opts.timeout = absl::ToChronoMilliseconds(timeout);
  opts.output_cap = 64 * 1024;
  spdlog::debug("running {}", absl::StrJoin(opts.argv, " "));
  subprocess::Result r = subprocess::Run(opts);
  spdlog::debug("wpr {}: {}", opts.argv.size() > 1 ? opts.argv[1] : "",
                r.Describe());
  return r;
}

absl::StatusOr<std::unique_ptr<BackendSession>> WprBackend::Start(
    const BackendStartRequest& request) {
  const std::string instance = WprInstanceName(request.session_name);
  subprocess::Result r =
      RunWpr(StartArgv(request), options_.config.start_timeout);
  if (r.outcome == subprocess::Outcome::kTimedOut) {
    // The instance may have half-started; make sure it does not linger.
    RunWpr(CancelArgv(request.session_name), options_.config.cancel_timeout);
  }
  LABTRACE_RETURN_IF_ERROR(WprResultToStatus("-start", instance, r));
  return std::unique_ptr<BackendSession>(new WprSession(this, request));
}

namespace {

// True while some `wpr ... -stop ... -instancename <instance>` runs.
bool StopStillRunning(const std::string& instance) {
  return !subprocess::FindProcesses([&](const std::vector<std::string>& argv) {
            bool stop = false, named = false;
            for (std::size_t i = 1; i < argv.size(); ++i) {
              stop = stop || absl::EqualsIgnoreCase(argv[i], "-stop");
              named = named || (i + 1 < argv.size() &&
                                absl::EqualsIgnoreCase(argv[i], "-instancename") &&
                                argv[i + 1] == instance);
            }
            return stop && named;
          }).empty();
}

}  // namespace

absl::StatusOr<Salvaged> WprBackend::Salvage(const JournaledRecording& r) {
  const std::string instance = WprInstanceName(r.session_name);
  const std::filesystem::path out =
      r.work_dir / (r.session_name + ".etl");
  const WprConfig& cfg = options_.config;
  // A -stop of the dead agent may still be finishing (POSIX: a wpr that
  // outlived the agent): while that process runs, wait (bounded) for the
  // instance to stop recording. Without it (it died with the agent, or on
  // Windows with the agent's job) the instance is stopped again below. The
  // file appearing says nothing: wpr writes it before the instance ends.
  const absl::Time deadline =
      absl::Now() + (r.was_stopping ? cfg.stop_timeout : absl::ZeroDuration());
  bool recording = false;
  for (;;) {
    subprocess::Result st = RunWpr(StatusArgv(r.session_name), cfg.cancel_timeout);
    recording = st.ok() && absl::StrContains(st.output, "recording is in progress");
    if (!recording || !r.was_stopping || absl::Now() >= deadline ||
        !StopStillRunning(instance)) {
      break;
    }
    absl::SleepFor(absl::Milliseconds(200));
  }
  if (recording && !r.work_dir.empty()) {
    // It outlived the agent: stop it properly and keep the file.
    std::error_code ec;
    std::filesystem::create_directories(r.work_dir, ec);
    subprocess::Result stop = RunWpr(StopArgv(r.session_name, out), cfg.stop_timeout);
    if (stop.ok() && std::filesystem::is_regular_file(out, ec)) {
      return Salvaged{out, "the WPR instance outlived the agent; the "
                           "restarted agent stopped it and kept its file"};
    }
    const absl::Status why =
        stop.outcome == subprocess::Outcome::kTimedOut
            ? absl::AbortedError(absl::StrCat("wpr -stop (instance ", instance,
                                              ") did not finish within ",
                                              absl::FormatDuration(cfg.stop_timeout)))
            : WprResultToStatus("-stop", instance, stop);
    subprocess::Result c = RunWpr(CancelArgv(r.session_name), cfg.cancel_timeout);
    return absl::Status(
        why.code(),
        absl::StrCat(why.message(), "; wpr -cancel ",
                     c.ok() || ParseWprHresult(c) == kWprNoProfilesRunning
                         ? std::string("ended the instance")
                         : WprResultToStatus("-cancel", instance, c).ToString()));
  }
  if (recording) {
    // No work dir known (an old journal): nowhere to put a file.
    subprocess::Result c = RunWpr(CancelArgv(r.session_name), cfg.cancel_timeout);
    return absl::FailedPreconditionError(absl::StrCat(
        "the WPR instance ", instance, " outlived the agent and was cancelled (",
        c.ok() ? "ok" : WprResultToStatus("-cancel", instance, c).ToString(),
        "); its journal entry named no work dir to keep a file in"));
  }
  std::error_code ec;
  if (std::filesystem::is_regular_file(out, ec)) {
    return Salvaged{out, "wpr -stop had finished writing the file when the "
                         "agent stopped"};
  }
  return absl::NotFoundError(absl::StrCat("the WPR instance ", instance,
                                          " was no longer recording and left "
                                          "no file"));
}

std::vector<std::string> LabtraceInstancesOfEtwSession(
    const std::string& etw_session_name) {
  constexpr absl::string_view kWprPrefix = "WPR_initiated_";
  absl::string_view rest = etw_session_name;
  if (!absl::ConsumePrefix(&rest, kWprPrefix) ||
      !absl::StartsWith(rest, "labtrace_")) {
    return {};
  }
  // Collector names of WPR's built-in profiles and of labtrace.wprp.
  for (absl::string_view collector :
       {"_WPR System Collector", "_WPR Event Collector",
        "_labtrace System Collector", "_labtrace Event Collector"}) {
    if (absl::EndsWith(rest, collector)) {
      return {std::string(rest.substr(0, rest.size() - collector.size()))};
    }
  }
  std::vector<std::string> out;
  for (std::size_t i = rest.find('_', 9); i != absl::string_view::npos;
       i = rest.find('_', i + 1)) {
    out.emplace_back(rest.substr(0, i));
  }
  return out;
}

std::vector<std::string> WprBackend::CleanupUnjournaled() {
  if (!options_.config.cancel_unjournaled) return {};
  absl::StatusOr<std::vector<std::string>> sessions;
  if (options_.list_etw_sessions) {
    sessions = options_.list_etw_sessions();
  } else {
    std::vector<std::string> names;
    std::string error;
    if (etw::ListSessions(&names, &error)) {
      sessions = std::move(names);
    } else {
      sessions = absl::UnavailableError(error);
    }
  }
  if (!sessions.ok()) {
    return {absl::StrCat("cannot list ETW sessions to find lost WPR instances: ",
                         sessions.status().message())};
  }
  std::vector<std::string> lines;
  std::set<std::string> tried;
  for (const std::string& etw_name : *sessions) {
    for (const std::string& instance : LabtraceInstancesOfEtwSession(etw_name)) {
      if (!tried.insert(instance).second) continue;
      subprocess::Result r = RunWpr(
          {options_.config.path, "-cancel", "-instancename", instance},
          options_.config.cancel_timeout);
      if (r.ok()) {
        lines.push_back(absl::StrCat("cancelled WPR instance ", instance,
                                     " (ETW session \"", etw_name,
                                     "\"), which no journal entry explained"));
      } else if (ParseWprHresult(r) != kWprNoProfilesRunning) {
        lines.push_back(
            WprResultToStatus("-cancel", instance, r).ToString());
      }
    }
  }
  return lines;
}

}  // namespace labtrace::agent
