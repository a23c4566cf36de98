// POSIX implementation of common/subprocess.h: fork/exec into a new process
// group, one pipe for merged stdout+stderr drained by a reader thread, and
// waits on a pidfd (Linux) so a timeout needs no sleep loop.

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <optional>
#include <thread>
#include <vector>

#include "common/output_sink.h"
#include "common/subprocess.h"

extern char** environ;

namespace labtrace::subprocess {
namespace {

using Clock = std::chrono::steady_clock;

std::string ErrnoText(const char* what, int err) {
  return std::string(what) + ": " + std::strerror(err);
}

int OpenPidfd(pid_t pid) {
#ifdef SYS_pidfd_open
  return static_cast<int>(syscall(SYS_pidfd_open, pid, 0));
#else
  (void)pid;
  errno = ENOSYS;
  return -1;
#endif
}

// Closes every descriptor in [first, last] (async-signal-safe: used
// between fork and exec). close_range (Linux 5.9+), else one by one up to the
// descriptor limit.
void CloseFrom(unsigned first, unsigned last) {
#ifdef SYS_close_range
  if (::syscall(SYS_close_range, first, last, 0) == 0) return;
#endif
  long max = ::sysconf(_SC_OPEN_MAX);
  if (max < 0 || max > (1 << 20)) max = 1 << 20;
  for (unsigned fd = first; fd <= last && fd < static_cast<unsigned>(max); ++fd) {
    ::close(static_cast<int>(fd));
  }
}

bool IsExecutableFile(const std::string& path) {
  struct stat st;
  return ::stat(path.c_str(), &st) == 0 && S_ISREG(st.st_mode) &&
         ::access(path.c_str(), X_OK) == 0;
}

}  // namespace

struct Process::Impl {
  pid_t pid = -1;
  int pidfd = -1;
  std::unique_ptr<OutputSink> output;
  std::thread reader;
  Clock::time_point started;
  std::chrono::milliseconds kill_grace{2000};
  bool reaped = false;
  std::atomic<bool> child_gone{false};  // Tells the reader to finish up.
  std::optional<Result> result;         // Set once reaped.

  ~Impl() {
    if (pid > 0 && !reaped) KillAndReap(false);
    if (reader.joinable()) reader.join();
    if (pidfd >= 0) ::close(pidfd);
  }

  // Non-blocking reap attempt. Returns true when the child has been reaped.
  bool TryReap(bool block) {
    if (reaped) return true;
    int status = 0;
    pid_t r;
    do {
      r = ::waitpid(pid, &status, block ? 0 : WNOHANG);
    } while (r < 0 && errno == EINTR);
    if (r == 0) return false;
    reaped = true;
    Result res;
    if (r < 0) {
      // Someone else reaped it (should not happen); report what we know.
      res.outcome = Outcome::kSignaled;
      res.error = ErrnoText("waitpid", errno);
    } else if (WIFEXITED(status)) {
      res.outcome = Outcome::kExited;
      res.exit_code = WEXITSTATUS(status);
    } else if (WIFSIGNALED(status)) {
      res.outcome = Outcome::kSignaled;
      res.term_signal = WTERMSIG(status);
    }
    // The reader ends when every writer of the pipe is gone. Grandchildren
    // in the group may still hold it: make sure they are gone too. One that
    // left the group (setsid) could hold it forever, so the reader also gives
    // up shortly after it is told the child is gone.
    ::kill(-pid, SIGKILL);
    child_gone.store(true);
    if (reader.joinable()) reader.join();
    output->Close();
    res.output = output->Tail();
    res.output_truncated = output->truncated();
    res.output_bytes = output->total_bytes();
    res.output_file_error = output->file_error();
    res.elapsed = std::chrono::duration_cast<std::chrono::milliseconds>(
        Clock::now() - started);
    result = std::move(res);
    return true;
  }

  // Waits until the child exits or the deadline passes.
  bool WaitUntil(std::optional<Clock::time_point> deadline) {
    while (!TryReap(false)) {
      int timeout_ms = -1;
      if (deadline) {
        auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
            *deadline - Clock::now());
        if (left.count() <= 0) return false;
        timeout_ms =
            static_cast<int>(std::min<long long>(left.count(), 1 << 30));
      }
      if (pidfd >= 0) {
        pollfd pfd{pidfd, POLLIN, 0};
        int r = ::poll(&pfd, 1, timeout_ms);
        if (r < 0 && errno != EINTR) return TryReap(true);
      } else {
        // No pidfd (old kernel): short sleeps, bounded by the deadline.
        int step = timeout_ms < 0 ? 10 : std::min(timeout_ms, 10);
        std::this_thread::sleep_for(std::chrono::milliseconds(step));
      }
    }
    return true;
  }

  void KillAndReap(bool as_timeout) {
    if (!reaped) {
      ::kill(-pid, SIGTERM);
      if (!WaitUntil(Clock::now() + kill_grace)) {
        ::kill(-pid, SIGKILL);
        TryReap(true);
      }
    }
    if (as_timeout && result) result->outcome = Outcome::kTimedOut;
  }
};

Process::Process() = default;
Process::~Process() = default;
Process::Process(Process&&) noexcept = default;
Process& Process::operator=(Process&&) noexcept = default;

bool Process::Start(const Options& options, std::string* error) {
  if (impl_ != nullptr) {
    *error = "process already started";
    return false;
  }
  if (options.argv.empty() || options.argv[0].empty()) {
    *error = "empty argv";
    return false;
  }
  const std::string program = FindProgram(options.argv[0]);
  if (program.empty()) {
    *error = "executable not found: " + options.argv[0];
    return false;
  }

  // Everything the child needs is prepared before fork(): after fork only
  // async-signal-safe calls are allowed.
  std::vector<char*> argv;
  for (const std::string& a : options.argv)
    argv.push_back(const_cast<char*>(a.c_str()));
  argv.push_back(nullptr);
  std::vector<std::string> env_storage;
  for (char** e = environ; *e != nullptr; ++e) {
    std::string entry(*e);
    bool overridden = false;
    for (const std::string& x : options.extra_env) {
      auto eq = x.find('=');
      if (eq != std::string::npos &&
          entry.compare(0, eq + 1, x, 0, eq + 1) == 0) {
        overridden = true;
        break;
      }
    }
    if (!overridden) env_storage.push_back(std::move(entry));
  }
  for (const std::string& x : options.extra_env) env_storage.push_back(x);
  std::vector<char*> envp;
  for (std::string& e : env_storage) envp.push_back(e.data());
  envp.push_back(nullptr);

  auto sink = std::make_unique<OutputSink>();
  if (!sink->Reset(options.output_cap, options.output_path, error,
                   options.output_file_cap)) {
    return false;
  }

  int out_pipe[2];
  if (::pipe2(out_pipe, O_CLOEXEC) != 0) {
    *error = ErrnoText("pipe2", errno);
    return false;
  }
  // A second pipe reports exec failure (errno) to the parent; it closes on a
  // successful exec thanks to O_CLOEXEC.
  int err_pipe[2];
  if (::pipe2(err_pipe, O_CLOEXEC) != 0) {
    *error = ErrnoText("pipe2", errno);
    ::close(out_pipe[0]);
    ::close(out_pipe[1]);
    return false;
  }

  const char* cwd =
      options.working_dir.empty() ? nullptr : options.working_dir.c_str();
  const pid_t parent = ::getpid();
  pid_t pid = ::fork();
  if (pid < 0) {
    *error = ErrnoText("fork", errno);
    for (int fd : {out_pipe[0], out_pipe[1], err_pipe[0], err_pipe[1]})
      ::close(fd);
    return false;
  }
  if (pid == 0) {
    ::setpgid(0, 0);
    if (options.die_with_parent) {
      // SIGKILL when the thread that started us ends (the caller waits on
      // this thread) or the whole parent dies, kill -9 included.
      ::prctl(PR_SET_PDEATHSIG, SIGKILL);
      if (::getppid() != parent) ::_exit(127);  // It died before prctl.
    }
    // Restore default signal handling the parent may have changed.
    sigset_t all;
    sigemptyset(&all);
    sigprocmask(SIG_SETMASK, &all, nullptr);
    signal(SIGINT, SIG_DFL);
    signal(SIGTERM, SIG_DFL);
    signal(SIGPIPE, SIG_DFL);
    int devnull = ::open("/dev/null", O_RDONLY);
    if (devnull >= 0) ::dup2(devnull, STDIN_FILENO);
    ::dup2(out_pipe[1], STDOUT_FILENO);
    ::dup2(out_pipe[1], STDERR_FILENO);
    // Nothing else of ours leaks into the child: not the agent's listening
    // sockets (some libraries accept without CLOEXEC), not its files. The
    // exec-failure pipe is CLOEXEC and must stay open until exec.
    const int keep = err_pipe[1];
    if (keep > STDERR_FILENO + 1) {
      CloseFrom(STDERR_FILENO + 1, static_cast<unsigned>(keep - 1));
    }
    CloseFrom(static_cast<unsigned>(keep + 1), ~0U);
    int child_errno = 0;
    if (cwd != nullptr && ::chdir(cwd) != 0) {
      child_errno = errno;
    } else {
      ::execve(program.c_str(), argv.data(), envp.data());
      child_errno = errno;
    }
    ssize_t ignored = ::write(err_pipe[1], &child_errno, sizeof(child_errno));
    (void)ignored;
    ::_exit(127);
  }
  // Parent. Also set the group here to close the race with an early kill.
  ::setpgid(pid, pid);
  ::close(out_pipe[1]);
  ::close(err_pipe[1]);
  int child_errno = 0;
  ssize_t n;
  do {
    n = ::read(err_pipe[0], &child_errno, sizeof(child_errno));
  } while (n < 0 && errno == EINTR);
  ::close(err_pipe[0]);

  auto impl = std::make_unique<Impl>();
  impl->pid = pid;
  impl->started = Clock::now();
  impl->kill_grace = options.kill_grace;
  impl->output = std::move(sink);
  if (n == static_cast<ssize_t>(sizeof(child_errno))) {
    // exec failed: reap the child and report.
    ::close(out_pipe[0]);
    int status;
    while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
    }
    impl->pid = -1;
    impl->reaped = true;
    *error = ErrnoText(cwd != nullptr ? "chdir/exec" : "exec", child_errno) +
             " (" + program + ")";
    return false;
  }
  impl->pidfd = OpenPidfd(pid);
  OutputSink* out = impl->output.get();
  std::atomic<bool>* gone = &impl->child_gone;
  int fd = out_pipe[0];
  impl->reader = std::thread([out, gone, fd] {
    std::vector<char> buf(64 * 1024);
    std::optional<Clock::time_point> drain_deadline;
    for (;;) {
      if (!drain_deadline && gone->load()) {
        // The child is reaped; its group was killed. Whatever still writes
        // escaped the group (setsid): read what is there for at most ~2 s,
        // then stop, even if it keeps writing.
        drain_deadline = Clock::now() + std::chrono::seconds(2);
      }
      if (drain_deadline && Clock::now() >= *drain_deadline) break;
      pollfd pfd{fd, POLLIN, 0};
      int pr = ::poll(&pfd, 1, 100);
      if (pr < 0 && errno != EINTR) break;
      if (pr <= 0) {
        // Nothing to read: once the child is gone, silence ends it early.
        if (drain_deadline &&
            *drain_deadline - Clock::now() < std::chrono::milliseconds(1000)) {
          break;
        }
        continue;
      }
      ssize_t r = ::read(fd, buf.data(), buf.size());
      if (r > 0) {
        out->Append(buf.data(), static_cast<std::size_t>(r));
      } else if (r == 0 || errno != EINTR) {
        break;
      }
    }
    ::close(fd);
  });
  impl_ = std::move(impl);
  return true;
}

std::optional<Result> Process::Wait(
    std::optional<std::chrono::milliseconds> timeout) {
  if (impl_ == nullptr) {
    Result r;  // Never started: report it, never "still running".
    r.error = "process was never started";
    return r;
  }
  std::optional<Clock::time_point> deadline;
  if (timeout) deadline = Clock::now() + *timeout;
  if (!impl_->WaitUntil(deadline)) return std::nullopt;
  return impl_->result;
}

bool Process::Interrupt() {
  if (impl_ == nullptr || impl_->reaped) return false;
  return ::kill(-impl_->pid, SIGINT) == 0;
}

Result Process::Kill(bool as_timeout) {
  if (impl_ == nullptr) {
    Result r;
    r.error = "process was never started";
    return r;
  }
  impl_->KillAndReap(as_timeout);
  return *impl_->result;
}

bool Process::running() const { return impl_ != nullptr && !impl_->reaped; }

std::int64_t Process::pid() const { return impl_ == nullptr ? -1 : impl_->pid; }

std::string Process::output() const {
  return impl_ == nullptr ? std::string() : impl_->output->Tail();
}

Result Run(const Options& options) {
  Process p;
  std::string error;
  if (!p.Start(options, &error)) {
    Result r;
    r.outcome = Outcome::kSpawnFailed;
    r.error = error;
    return r;
  }
  std::optional<std::chrono::milliseconds> timeout;
  if (options.timeout.count() > 0) timeout = options.timeout;
  if (std::optional<Result> r = p.Wait(timeout)) return *r;
  return p.Kill(/*as_timeout=*/true);
}

std::string FindProgram(const std::string& name) {
  if (name.empty()) return {};
  if (name.find('/') != std::string::npos) {
    return IsExecutableFile(name) ? name : std::string();
  }
  const char* path = std::getenv("PATH");
  std::string dirs = path != nullptr ? path : "/usr/local/bin:/usr/bin:/bin";
  std::size_t start = 0;
  while (start <= dirs.size()) {
    std::size_t end = dirs.find(':', start);
    if (end == std::string::npos) end = dirs.size();
    std::string dir = dirs.substr(start, end - start);
    if (dir.empty()) dir = ".";
    std::string candidate = dir + "/" + name;
    if (IsExecutableFile(candidate)) return candidate;
    start = end + 1;
  }
  return {};
}

bool ProcessExists(std::int64_t pid) {
  if (pid <= 0) return false;
  return ::kill(static_cast<pid_t>(pid), 0) == 0 || errno == EPERM;
}

std::string ProcessStartId(std::int64_t pid) {
  if (pid <= 0) return "";
  std::ifstream in("/proc/" + std::to_string(pid) + "/stat");
  std::string stat;
  if (!std::getline(in, stat)) return "";
  // Field 22 (starttime); the command name (field 2) may hold spaces and
  // parentheses, so count from the last ')'.
  std::size_t p = stat.rfind(')');
  if (p == std::string::npos) return "";
  // Field 3, the state: a zombie has exited (its files are closed) and only
  // waits for its parent; for recovery it is gone.
  if (p + 2 < stat.size() && stat[p + 2] == 'Z') return "";
  int field = 2;
  std::size_t i = p + 1;
  while (i < stat.size() && field < 22) {
    while (i < stat.size() && stat[i] == ' ') ++i;
    ++field;
    if (field == 22) break;
    while (i < stat.size() && stat[i] != ' ') ++i;
  }
  std::size_t e = stat.find(' ', i);
  return stat.substr(i, e == std::string::npos ? std::string::npos : e - i);
}

bool KillProcessTree(std::int64_t pid) {
  if (pid <= 0) return false;
  const bool group = ::kill(static_cast<pid_t>(-pid), SIGKILL) == 0;
  const bool single = ::kill(static_cast<pid_t>(pid), SIGKILL) == 0;
  return group || single;
}

std::vector<std::string> ProcessArgv(std::int64_t pid) {
  std::vector<std::string> argv;
  if (pid <= 0) return argv;
  std::ifstream in("/proc/" + std::to_string(pid) + "/cmdline",
                   std::ios::binary);
  std::string cmdline((std::istreambuf_iterator<char>(in)),
                      std::istreambuf_iterator<char>());
  std::string cur;
  for (char c : cmdline) {
    if (c == '\0') {
      argv.push_back(std::move(cur));
      cur.clear();
    } else {
      cur += c;
    }
  }
  if (!cur.empty()) argv.push_back(std::move(cur));
  return argv;
}

std::vector<std::int64_t> FindProcesses(
    const std::function<bool(const std::vector<std::string>&)>& matches) {
  std::vector<std::int64_t> found;
  std::error_code ec;
  for (auto it = std::filesystem::directory_iterator("/proc", ec);
       !ec && it != std::filesystem::directory_iterator(); it.increment(ec)) {
    const std::string name = it->path().filename().string();
    if (name.empty() ||
        !std::all_of(name.begin(), name.end(),
                     [](char c) { return c >= '0' && c <= '9'; })) {
      continue;
    }
    const std::int64_t pid = std::stoll(name);
    const std::vector<std::string> argv = ProcessArgv(pid);
    if (!argv.empty() && matches(argv)) found.push_back(pid);
  }
  return found;
}

}  // namespace labtrace::subprocess
