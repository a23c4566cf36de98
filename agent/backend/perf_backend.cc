#include "agent/backend/perf_backend.h"

#include <signal.h>
#include <sys/mount.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <mutex>
#include <thread>
#include <utility>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "absl/synchronization/mutex.h"
#include "common/file_util.h"
#include "common/perf_data.h"
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

// One perf recording. A thread of its own owns the perf process (the
// subprocess API wants one owner): it waits for perf, sends SIGINT or kills
// it when asked, and reports an exit nobody asked for.
class PerfSession final : public BackendSession {
 public:
  PerfSession(PerfConfig config, BackendStartRequest request,
              std::filesystem::path out, subprocess::Process process)
      : config_(std::move(config)),
        request_(std::move(request)),
        out_(std::move(out)),
        pid_(process.pid()),
        start_id_(subprocess::ProcessStartId(pid_)) {
    owner_ = std::thread(
        [this, p = std::move(process)]() mutable { Own(std::move(p)); });
  }

  ~PerfSession() override {
    {
      absl::MutexLock lock(&mu_);
      if (!result_) kill_ = true;  // Never leave perf running.
    }
    owner_.join();
  }

  void SetOnEnded(std::function<void(const std::string&)> on_ended) override {
    absl::MutexLock lock(&mu_);
    on_ended_ = std::move(on_ended);
    if (result_ && !asked_ && !ended_reported_) {
      ended_reported_ = true;  // Ended before anyone listened.
      auto f = on_ended_;
      const std::string why = EndedWords(*result_);
      mu_.Unlock();
      f(why);
      mu_.Lock();
    }
  }

  absl::StatusOr<std::filesystem::path> Stop() override {
    subprocess::Result r;
    bool timed_out = false;
    {
      absl::MutexLock lock(&mu_);
      asked_ = true;
      interrupt_ = true;
      auto done = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
        return result_.has_value();
      };
      if (!mu_.AwaitWithTimeout(absl::Condition(&done), config_.stop_timeout)) {
        kill_ = true;
        timed_out = true;
        mu_.Await(absl::Condition(&done));
      }
      r = *result_;
    }
    if (timed_out) {
      return absl::AbortedError(absl::StrCat(
          "perf (pid ", pid_, ") did not finish its file within ",
          absl::FormatDuration(config_.stop_timeout),
          " after SIGINT and was killed; output: ", Tail(r.output)));
    }
    if (!CleanPerfExit(r)) {
      return absl::InternalError(
          absl::StrCat("perf record ", r.Describe(), ": ", Tail(r.output)));
    }
    std::error_code ec;
    auto size = std::filesystem::file_size(out_, ec);
    if (ec || size == 0) {
      return absl::InternalError(
          absl::StrCat("perf record stopped but ", PathToUtf8(out_),
                       " is missing or empty: ", Tail(r.output)));
    }
    return out_;
  }

  absl::Status Cancel() override {
    {
      absl::MutexLock lock(&mu_);
      asked_ = true;
      kill_ = true;
      auto done = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
        return result_.has_value();
      };
      mu_.Await(absl::Condition(&done));
    }
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

  // "<pid> <start id> <output path>": recovery finds perf by pid and checks
  // the start id, so a reused pid is never signalled.
  std::string RecoveryHandle() const override {
    return absl::StrCat(pid_, " ", start_id_.empty() ? "-" : start_id_, " ",
                        PathToUtf8(out_));
  }

 private:
  static std::string EndedWords(const subprocess::Result& r) {
    return absl::StrCat("perf record ended on its own (", r.Describe(),
                        "): ", Tail(r.output));
  }

  void Own(subprocess::Process process) {
    bool interrupted = false;
    for (;;) {
      std::optional<subprocess::Result> r =
          process.Wait(std::chrono::milliseconds(100));
      if (!r) {
        absl::MutexLock lock(&mu_);
        if (kill_) {
          r = process.Kill();
        } else if (interrupt_ && !interrupted) {
          mu_.Unlock();
          process.Interrupt();
          mu_.Lock();
          interrupted = true;
          continue;
        } else {
          continue;
        }
      }
      std::function<void(const std::string&)> report;
      std::string why;
      {
        absl::MutexLock lock(&mu_);
        result_ = *r;
        if (!asked_ && on_ended_ && !ended_reported_) {
          ended_reported_ = true;
          report = on_ended_;
          why = EndedWords(*r);
        }
      }
      if (report) report(why);
      return;
    }
  }

  const PerfConfig config_;
  const BackendStartRequest request_;
  const std::filesystem::path out_;
  const std::int64_t pid_;
  const std::string start_id_;
  mutable absl::Mutex mu_;
  bool interrupt_ ABSL_GUARDED_BY(mu_) = false;
  bool kill_ ABSL_GUARDED_BY(mu_) = false;
  bool asked_ ABSL_GUARDED_BY(mu_) = false;  // Stop or Cancel was called.
  bool ended_reported_ ABSL_GUARDED_BY(mu_) = false;
  std::optional<subprocess::Result> result_ ABSL_GUARDED_BY(mu_);
  std::function<void(const std::string&)> on_ended_ ABSL_GUARDED_BY(mu_);
  std::thread owner_;
};

// True if `argv` is `perf record ... -o <out> ...` exactly.
bool IsPerfRecordWriting(const std::vector<std::string>& argv,
                         const std::string& out) {
  if (argv.size() < 2 || argv[1] != "record") return false;
  for (std::size_t i = 2; i + 1 < argv.size(); ++i) {
    if (argv[i] == "-o" && argv[i + 1] == out) return true;
  }
  return false;
}

// Sends SIGINT to a perf that outlived the agent and waits (up to `wait`)
// for it to finish its file; kills it if it does not.
std::string StopStrayPerf(std::int64_t pid, const std::string& start_id,
                          absl::Duration wait) {
  ::kill(static_cast<pid_t>(pid), SIGINT);
  const absl::Time deadline = absl::Now() + wait;
  while (subprocess::ProcessStartId(pid) == start_id) {
    if (absl::Now() >= deadline) {
      subprocess::KillProcessTree(pid);
      return absl::StrCat("perf (pid ", pid, ") did not finish within ",
                          absl::FormatDuration(wait), " of SIGINT; killed");
    }
    absl::SleepFor(absl::Milliseconds(50));
  }
  return "";
}

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

PerfBackend::PerfBackend(PerfConfig config, std::filesystem::path work_root)
    : config_(std::move(config)), work_root_(std::move(work_root)) {}

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
  } else if (request.max_bytes > 0) {
    // perf stops recording by itself at this size (and finishes the file).
    argv.push_back("--max-size");
    argv.push_back(absl::StrCat(std::max<std::uint64_t>(request.max_bytes / 1024, 1), "K"));
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
    std::string msg = absl::StrCat("perf record ", r->Describe(),
                                   " right after start: ",
                                   tail.empty() ? "it printed nothing" : tail);
    // perf says nothing when it cannot create its file on a full volume.
    if (absl::StatusOr<std::uint64_t> free = FreeBytes(request.work_dir);
        free.ok() && *free < (1 << 20)) {
      absl::StrAppend(&msg, "; the volume holding ",
                      PathToUtf8(request.work_dir), " has ", *free,
                      " bytes free");
      return absl::ResourceExhaustedError(msg);
    }
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

absl::StatusOr<Salvaged> PerfBackend::Salvage(const JournaledRecording& r) {
  // handle: "<pid> <start id> <output path>" (older agents: "<pid> <path>").
  std::vector<std::string> parts = absl::StrSplit(r.handle, absl::MaxSplits(' ', 2));
  std::int64_t pid = 0;
  if (parts.size() < 2 || !absl::SimpleAtoi(parts[0], &pid) || pid <= 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("bad perf recovery handle \"", r.handle, "\""));
  }
  const std::string start_id = parts.size() == 3 ? parts[1] : "";
  const std::string out = parts.size() == 3 ? parts[2] : parts[1];
  Salvaged s;
  s.file = PathFromUtf8(out);
  std::string stopped;
  // Only a process that is still that perf, writing that file.
  if (!start_id.empty() && start_id != "-" &&
      subprocess::ProcessStartId(pid) == start_id &&
      IsPerfRecordWriting(subprocess::ProcessArgv(pid), out)) {
    spdlog::warn("session {}: perf (pid {}) outlived the agent; stopping it "
                 "so that it finishes its file",
                 r.session_name, pid);
    const std::string problem = StopStrayPerf(pid, start_id, config_.stop_timeout);
    stopped = problem.empty()
                  ? "perf outlived the agent and was stopped with SIGINT"
                  : problem;
  }
  std::error_code ec;
  if (!std::filesystem::is_regular_file(s.file, ec)) {
    return absl::NotFoundError(
        absl::StrCat("perf left no file (", out, ")",
                     stopped.empty() ? "" : "; ", stopped));
  }
  std::string note, error;
  if (!perf::RepairPerfData(s.file, &note, &error)) {
    return absl::DataLossError(absl::StrCat("the perf.data perf left cannot be "
                                            "used: ", error));
  }
  s.note = stopped.empty() ? note : absl::StrCat(stopped, "; ", note);
  return s;
}

std::vector<std::string> PerfBackend::CleanupUnjournaled() {
  std::vector<std::string> lines;
  if (work_root_.empty()) return lines;
  const std::string root = PathToUtf8(work_root_) + "/";
  // `perf record ... -o <file under our work root>`: the output argument.
  auto output_under_root = [&root](const std::vector<std::string>& argv) {
    if (argv.size() < 2 || argv[1] != "record") return std::string();
    for (std::size_t i = 2; i + 1 < argv.size(); ++i) {
      if (argv[i] == "-o" && absl::StartsWith(argv[i + 1], root)) {
        return argv[i + 1];
      }
    }
    return std::string();
  };
  for (std::int64_t pid : subprocess::FindProcesses(
           [&](const std::vector<std::string>& argv) {
             return !output_under_root(argv).empty();
           })) {
    const std::string start_id = subprocess::ProcessStartId(pid);
    const std::string out = output_under_root(subprocess::ProcessArgv(pid));
    if (start_id.empty() || out.empty()) continue;  // Gone meanwhile.
    const std::string problem =
        StopStrayPerf(pid, start_id, config_.stop_timeout);
    lines.push_back(absl::StrCat("stopped perf (pid ", pid, ") writing ", out,
                                 ", which no journal entry named",
                                 problem.empty() ? "" : "; ", problem));
  }
  return lines;
}

}  // namespace labtrace::agent
