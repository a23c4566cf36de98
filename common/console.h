// What a command-line program needs from the OS around main(): its arguments
// as UTF-8, whether a stream is a terminal, and stop requests (Ctrl-C,
// SIGTERM, closing the console window, logoff, system shutdown).
//
// Platform layer: standard library and OS API only. console_posix.cc uses
// signals and a sigwait thread; console_win.cc uses SetConsoleCtrlHandler and
// the wide command line. Both mains (agent, controller) use it, so neither
// has a line of platform code.
//
// Usage:
//   int main(int argc, char** argv) {
//     std::vector<std::string> args = console::Utf8Arguments(argc, argv);
//     console::InstallStopHandler([&](const console::StopRequest& r) {
//       if (r.count == 1) server->Shutdown(); else ...;
//     });
//     ...
//   }

#ifndef LABTRACE_COMMON_CONSOLE_H_
#define LABTRACE_COMMON_CONSOLE_H_

#include <cstdio>
#include <functional>
#include <string>
#include <vector>

namespace labtrace::console {

// The program's arguments, argv[0] included, as UTF-8. On Windows they come
// from the wide command line (argv holds them in the ANSI code page, which
// loses every character outside it); on POSIX they are argv as given.
std::vector<std::string> Utf8Arguments(int argc, char** argv);

// Pointers into `args` for code that takes (argc, argv); valid while `args`
// lives and is not modified.
std::vector<const char*> ArgvPointers(const std::vector<std::string>& args);

// True if `stream` (stdout or stderr) is an interactive terminal/console.
bool IsTerminal(std::FILE* stream);

// Raises this process's open-file limit to its hard limit (POSIX; a
// controller talking to thousands of agents holds a socket per host in
// flight). Windows: nothing to do.
void RaiseFileLimit();

struct StopRequest {
  // 1 for the first request, 2 for the second, ...
  int count = 0;
  // What asked, for the log: "SIGTERM", "SIGINT", "Ctrl-C", "Ctrl-Break",
  // "console closed", "logoff", "system shutdown".
  std::string what;
  // Windows only: the console is closing, the user logs off or the system
  // shuts down. The OS ends the process soon after the handler returns (and
  // in any case after a few seconds), so the handler should finish the
  // shutdown before returning.
  bool process_ending = false;
};

// Routes stop requests to `handler` instead of the default (terminate). The
// handler runs on a thread that is not the main thread (never in a signal
// handler). It should hand the work over and return quickly, so a later
// request ("hurry": a second Ctrl-C) is seen while the first is being
// handled; the one exception is a request with process_ending set (Windows),
// where the process ends as soon as the handler returns, so the handler
// should wait there until the shutdown is done. Also ignores SIGPIPE on
// POSIX (a vanished peer is an error value, never a death). Call once, early
// in main, before other threads start.
void InstallStopHandler(std::function<void(const StopRequest&)> handler);

}  // namespace labtrace::console

#endif  // LABTRACE_COMMON_CONSOLE_H_
