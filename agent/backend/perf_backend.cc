#include "agent/backend/perf_backend.h"

#include <signal.h>
#include <sys/mount.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <mutex>
#include <utility>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "common/file_util.h"
#include "common/subprocess.h"
#include "spdlog/spdlog.h"

namespace labtrace::agent {
namespace {

constexpr std::size_t kErrorTailBytes = 1500;

std::string Tail(const std::string& s) {
  absl::string_view v = absl::StripAsciiWhitespace(s);
  if (v.size() > kErrorTailBytes) v = v.substr(v.size() - kErrorTailBytes);
  return std::string(v);
}

bool UsesTracepoints(const std::vector<std::string>& args) {
  for (std::size_t i = 0; i + 1 < args.size(); ++i) {
    if ((args[i] == "-e" || args[i] == "--event") &&
        args[i + 1].find(':') != std::string::npos) {
      return true;
    }
  }
  return false;
}

// perf ends with 0, or 130 / SIGINT when interrupted: all are a clean stop.
bool CleanPerfExit(const subprocess::Result& r) {
  if (r.outcome == subprocess::Outcome::kExited) {
    return r.exit_code == 0 || r.exit_code == 128 + SIGINT;
  }
  return r.outcome == subprocess::Outcome::kSignaled && r.term_signal == SIGINT;
}

class PerfSession final : public BackendSession {
 public:
  PerfSession(PerfConfig config, BackendStartRequest request,
              std::filesystem::path out, subprocess::Process process)
      : config_(std::move(config)),
        request_(std::move(request)),
        out_(std::move(out)),
        process_(std::move(process)) {}

  absl::StatusOr<std::filesystem::path> Stop() override {
    process_.Interrupt();
    std::optional<subprocess::Result> r =
        process_.Wait(absl::ToChronoMilliseconds(config_.stop_timeout));
    if (!r) {
      subprocess::Result killed = process_.Kill(/*as_timeout=*/true);
      return absl::AbortedError(absl::StrCat(
          "perf (pid ", process_.pid(), ") did not finish its file within ",
          absl::FormatDuration(config_.stop_timeout),
          " after SIGINT and was killed; output: ", Tail(killed.output)));
    }
    if (!CleanPerfExit(*r)) {
      return absl::InternalError(
          absl::StrCat("perf record ", r->Describe(), ": ", Tail(r->output)));
    }
    std::error_code ec;
    auto size = std::filesystem::file_size(out_, ec);
    if (ec || size == 0) {
      return absl::InternalError(
          absl::StrCat("perf record stopped but ", PathToUtf8(out_),
                       " is missing or empty: ", Tail(r->output)));
    }
    return out_;
  }

  absl::Status Cancel() override {
    process_.Kill();
    std::error_code ec;
    std::filesystem::remove(out_, ec);
    return absl::OkStatus();
  }

  std::int64_t BytesRecorded() const override {
    if (request_.mode != v1::TRACE_MODE_FILE) return -1;
    std::error_code ec;
    auto size = std::filesystem::file_size(out_, ec);
    return ec ? 0 : static_cast<std::int64_t>(size);
  }

  std::string RecoveryHandle() const override {
    return absl::StrCat(process_.pid(), " ", PathToUtf8(out_));
  }

 private:
  const PerfConfig config_;
  const BackendStartRequest request_;
  const std::filesystem::path out_;
  subprocess::Process process_;
};

}  // namespace

absl::Status EnsureTracefs() {
  static std::mutex mu;  // Two sessions starting at once mount only once.
  std::lock_guard<std::mutex> lock(mu);
  std::error_code ec;
  for (const char* dir :
       {"/sys/kernel/tracing/events", "/sys/kernel/debug/tracing/events"}) {
    if (std::filesystem::is_directory(dir, ec)) return absl::OkStatus();
  }
  if (::mount("nodev", "/sys/kernel/tracing", "tracefs", 0, nullptr) == 0) {
    spdlog::info(
        "mounted tracefs at /sys/kernel/tracing for tracepoint profiles");
    return absl::OkStatus();
  }
  const int err = errno;
  return absl::FailedPreconditionError(absl::StrCat(
      "this profile uses tracepoints, which need tracefs, and tracefs is not "
      "mounted; mounting it at /sys/kernel/tracing failed: ",
      std::strerror(err),
      ". Run the agent as root, or mount it once: "
      "mount -t tracefs nodev /sys/kernel/tracing"));
}

PerfBackend::PerfBackend(PerfConfig config) : config_(std::move(config)) {}

absl::Status PerfBackend::CheckAvailable(std::string* detail) const {
  std::string path = subprocess::FindProgram(config_.path);
  if (path.empty()) {
    return absl::FailedPreconditionError(absl::StrCat(
        "perf executable \"", config_.path,
        "\" not found (install linux-perf, or set perf.path / --perf-path)"));
  }
  if (detail != nullptr) *detail = path;
  return absl::OkStatus();
}

std::vector<std::string> PerfBackend::RecordArgv(
    const BackendStartRequest& request) const {
  std::vector<std::string> argv = {
      config_.path, "record", "-a", "-o",
      PathToUtf8(request.work_dir / (request.session_name + ".perf.data"))};
  if (request.mode == v1::TRACE_MODE_MEMORY) {
    argv.push_back("--overwrite");
    argv.push_back("-m");
    argv.push_back(std::to_string(config_.memory_mode_pages));
  }
  argv.insert(argv.end(), request.profile.args.begin(),
              request.profile.args.end());
  return argv;
}

absl::StatusOr<std::unique_ptr<BackendSession>> PerfBackend::Start(
    const BackendStartRequest& request) {
  if (absl::Status s = CheckAvailable(nullptr); !s.ok()) return s;
  if (UsesTracepoints(request.profile.args)) {
    if (absl::Status s = EnsureTracefs(); !s.ok()) return s;
  }
  subprocess::Options opts;
  opts.argv = RecordArgv(request);
  opts.output_cap = 16 * 1024;
  opts.kill_grace = std::chrono::milliseconds(2000);
  subprocess::Process process;
  std::string error;
  spdlog::debug("running {}", absl::StrJoin(opts.argv, " "));
  if (!process.Start(opts, &error)) {
    return absl::FailedPreconditionError(
        absl::StrCat("cannot start perf: ", error));
  }
  // perf fails fast on bad events or permissions; give it a moment.
  if (std::optional<subprocess::Result> r =
          process.Wait(absl::ToChronoMilliseconds(config_.start_check))) {
    const std::string tail = Tail(r->output);
    const std::string msg = absl::StrCat("perf record ", r->Describe(),
                                         " right after start: ", tail);
    if (absl::StrContains(tail, "ermission") ||
        absl::StrContains(tail, "paranoid")) {
      return absl::PermissionDeniedError(msg);
    }
    if (absl::StrContains(tail, "event syntax error") ||
        absl::StrContains(tail, "Usage:") ||
        absl::StrContains(tail, "unknown tracepoint")) {
      return absl::InvalidArgumentError(
          absl::StrCat(msg, " (check the profile's args in the agent config)"));
    }
    return absl::InternalError(msg);
  }
  std::filesystem::path out =
      request.work_dir / (request.session_name + ".perf.data");
  return std::unique_ptr<BackendSession>(
      new PerfSession(config_, request, std::move(out), std::move(process)));
}

absl::Status PerfBackend::CleanupOrphan(const std::string& session_name,
                                        const std::string& handle) {
  // handle: "<pid> <output path>". Only kill a process that still is perf
  // writing that file (the pid may have been reused).
  std::pair<std::string, std::string> parts =
      absl::StrSplit(handle, absl::MaxSplits(' ', 1));
  std::int64_t pid = 0;
  if (!absl::SimpleAtoi(parts.first, &pid) || pid <= 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("bad perf recovery handle \"", handle, "\""));
  }
  std::ifstream in("/proc/" + std::to_string(pid) + "/cmdline",
                   std::ios::binary);
  std::string cmdline((std::istreambuf_iterator<char>(in)),
                      std::istreambuf_iterator<char>());
  if (cmdline.empty() || !absl::StrContains(cmdline, parts.second)) {
    return absl::OkStatus();  // Already gone.
  }
  spdlog::warn(
      "killing perf (pid {}) left running for session {} by a previous agent",
      pid, session_name);
  ::kill(static_cast<pid_t>(pid), SIGKILL);
  return absl::OkStatus();
}

}  // namespace labtrace::agent
