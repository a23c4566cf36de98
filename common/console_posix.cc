// POSIX implementation of common/console.h: stop signals (SIGINT, SIGTERM,
// SIGHUP) are blocked in every thread and taken by one sigwait thread.

#include <signal.h>
#include <sys/resource.h>
#include <unistd.h>

#include <cstring>
#include <thread>

#include "common/console.h"

namespace labtrace::console {

std::vector<std::string> Utf8Arguments(int argc, char** argv) {
  return std::vector<std::string>(argv, argv + argc);
}

std::vector<const char*> ArgvPointers(const std::vector<std::string>& args) {
  std::vector<const char*> out;
  out.reserve(args.size() + 1);
  for (const std::string& a : args) out.push_back(a.c_str());
  out.push_back(nullptr);
  return out;
}

bool IsTerminal(std::FILE* stream) { return isatty(fileno(stream)) != 0; }

void InstallStopHandler(std::function<void(const StopRequest&)> handler) {
  // Blocked here, before other threads exist, so every thread inherits the
  // mask and only the waiter below ever takes these signals. Children get a
  // clean mask (common/subprocess_posix.cc resets it after fork).
  sigset_t stop_signals;
  sigemptyset(&stop_signals);
  sigaddset(&stop_signals, SIGINT);
  sigaddset(&stop_signals, SIGTERM);
  sigaddset(&stop_signals, SIGHUP);
  pthread_sigmask(SIG_BLOCK, &stop_signals, nullptr);
  signal(SIGPIPE, SIG_IGN);
  std::thread([stop_signals, handler = std::move(handler)] {
    for (int count = 1;; ++count) {
      int sig = 0;
      while (sigwait(&stop_signals, &sig) != 0) {
      }
      StopRequest r;
      r.count = count;
      r.what = sig == SIGINT    ? "SIGINT"
               : sig == SIGTERM ? "SIGTERM"
                                : "SIGHUP";
      handler(r);
    }
  }).detach();
}

void RaiseFileLimit() {
  rlimit rl{};
  if (::getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
    rl.rlim_cur = rl.rlim_max;
    ::setrlimit(RLIMIT_NOFILE, &rl);
  }
}

}  // namespace labtrace::console
