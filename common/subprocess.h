// Subprocess: run a program from an argv (never through a shell), capture its
// output with a size cap, wait with a timeout, and kill its whole process tree.
//
// This is the platform layer: it uses only the standard library and the OS API
// (no Abseil, spdlog or protobuf), so the Windows file cross-compiles with
// mingw-w64 and its tests run under wine. Callers turn `Result` into an
// absl::Status themselves (the WPR and perf backends do).
//
// Implementations: subprocess_posix.cc (fork/exec, process group, pidfd wait)
// and subprocess_win.cc (CreateProcessW, job object, pipes). CMake picks one.
//
// Promises:
//  - No zombies: a Process that is destroyed while its child still runs kills
//    the child's process group (POSIX) or job (Windows) and reaps it.
//  - Output (stdout and stderr merged, in arrival order) is drained by a
//    background thread so the child never blocks on a full pipe; only the
//    last `output_cap` bytes are kept in memory (the tail is what explains a
//    failure), and with `output_path` all of it goes to a file as well.
//  - Bounded: once the child has exited, its output is read for at most
//    about two more seconds (a grandchild that left the process group and
//    keeps writing cannot hold the caller).
//  - POSIX: the child inherits no descriptor but stdin (/dev/null), stdout
//    and stderr (close_range), so listening sockets and files of the caller
//    never leak into perf, wpr or step commands.
//  - Thread safety: Start/Wait/Kill/Interrupt are called by one owner thread;
//    output() and running() may be called from any thread.
//
// Usage:
//   subprocess::Options opts;
//   opts.argv = {"wpr", "-status"};
//   opts.timeout = std::chrono::seconds(60);
//   subprocess::Result r = subprocess::Run(opts);
//   if (r.outcome != subprocess::Outcome::kExited || r.exit_code != 0) ...

#ifndef LABTRACE_COMMON_SUBPROCESS_H_
#define LABTRACE_COMMON_SUBPROCESS_H_

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace labtrace::subprocess {

// How a child ended.
enum class Outcome {
  kExited,       // Exited on its own; exit_code is valid.
  kSignaled,     // Killed by a signal (POSIX); term_signal is valid.
  kTimedOut,     // Did not finish within the timeout and was killed.
  kSpawnFailed,  // Could not be started at all; error says why.
};

const char* OutcomeName(Outcome outcome);

struct Options {
  // argv[0] is the program: a path, or a bare name looked up in PATH.
  std::vector<std::string> argv;
  // Extra environment entries ("KEY=VALUE"), added to the inherited ones.
  std::vector<std::string> extra_env;
  // Working directory; empty means inherit.
  std::string working_dir;
  // For Run(): total time allowed; zero means no limit.
  std::chrono::milliseconds timeout{0};
  // Keep at most this many bytes of output in memory (the most recent ones).
  std::size_t output_cap = 64 * 1024;
  // If set (UTF-8 path), all output is also written to this file as it
  // arrives (created or truncated); memory stays bounded by output_cap.
  std::string output_path;
  // If non-zero, the file stops at this many bytes (with a note saying so).
  std::uint64_t output_file_cap = 0;
  // The child dies with its parent, even on kill -9 of the parent (Linux:
  // PR_SET_PDEATHSIG, tied to the starting thread, which must outlive the
  // child: start it from the thread that waits for it). On Windows every
  // child already dies with its parent (job object, kill on close). Off by
  // default: perf must outlive a crashed agent, whose restart salvages it.
  bool die_with_parent = false;
  // After a timeout or Kill(): time between the polite signal (SIGTERM) and
  // SIGKILL. On Windows the job is terminated at once.
  std::chrono::milliseconds kill_grace{2000};
};

struct Result {
  Outcome outcome = Outcome::kSpawnFailed;
  int exit_code = -1;   // kExited: the process's exit status.
  int term_signal = 0;  // kSignaled: the signal number.
  std::string output;   // Tail of merged stdout+stderr (<= output_cap).
  bool output_truncated = false;  // Bytes were dropped from the front.
  std::string error;  // kSpawnFailed: OS error text; otherwise empty.
  std::chrono::milliseconds elapsed{0};
  std::uint64_t output_bytes = 0;  // Everything the child wrote.
  // With Options::output_path: why the file is incomplete, if it is.
  std::string output_file_error;

  bool ok() const { return outcome == Outcome::kExited && exit_code == 0; }
  // One line for logs and error messages: "exited with code 3",
  // "timed out after 60000 ms", "killed by signal 9", "failed to start: ...".
  std::string Describe() const;
};

// A running child process. Move-only; destroying a running Process kills it.
class Process {
 public:
  Process();
  ~Process();
  Process(Process&&) noexcept;
  Process& operator=(Process&&) noexcept;
  Process(const Process&) = delete;
  Process& operator=(const Process&) = delete;

  // Starts the child. On failure returns false and fills *error.
  bool Start(const Options& options, std::string* error);

  // Waits up to `timeout` (nullopt = forever) for the child to exit. Returns
  // the result once it has exited (and its output has been drained), nullopt
  // if it is still running. Safe to call again after nullopt. A Process that
  // was never started returns a kSpawnFailed result.
  std::optional<Result> Wait(std::optional<std::chrono::milliseconds> timeout);

  // Asks the child to finish: SIGINT to the process group on POSIX (perf
  // finishes its file on SIGINT); CTRL_BREAK to the process group on Windows.
  bool Interrupt();

  // Terminates the whole tree (SIGTERM, grace, SIGKILL; job termination on
  // Windows) and reaps it. The result is marked kTimedOut if `as_timeout`.
  Result Kill(bool as_timeout = false);

  // True between a successful Start and the reaping of the child.
  bool running() const;
  // OS process id, or -1.
  std::int64_t pid() const;
  // A copy of the output captured so far (the tail, <= output_cap).
  std::string output() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// Starts, waits with options.timeout, kills on timeout, returns the result.
Result Run(const Options& options);

// Finds an executable: a path containing a separator is checked as is, a bare
// name is searched in PATH (and with PATHEXT extensions on Windows). Returns
// the full path, or an empty string when not found.
std::string FindProgram(const std::string& name);

// True if the process with this id exists (best effort; used by recovery).
bool ProcessExists(std::int64_t pid);

// An id of the process's start (POSIX: its start time in clock ticks since
// boot; Windows: its creation time), or "" if there is no such process (or
// it has exited and only waits for its parent to reap it). A
// pid with the same start id is the same process: recovery uses it so that
// it never kills a process that merely reused a pid.
std::string ProcessStartId(std::int64_t pid);

// Kills the process and, on POSIX, its process group (children started by
// Process lead their group). For recovery of children a dead agent left.
bool KillProcessTree(std::int64_t pid);

// The argv of a running process (POSIX: /proc/<pid>/cmdline), empty if it
// is gone or cannot be read. Windows: always empty (another process's
// command line is not readable through a supported API); recovery does not
// need it there, because an agent's children die with its job object.
std::vector<std::string> ProcessArgv(std::int64_t pid);

// Ids of the running processes whose argv satisfies `matches` (POSIX: a
// /proc scan; Windows: none, see ProcessArgv).
std::vector<std::int64_t> FindProcesses(
    const std::function<bool(const std::vector<std::string>&)>& matches);

}  // namespace labtrace::subprocess

#endif  // LABTRACE_COMMON_SUBPROCESS_H_
