// labtrace: the controller CLI. Wiring only (arguments, stop requests,
// terminal detection); see controller/cli/cli.h.

#include <cstdlib>
#include <iostream>
#include <mutex>
#include <string>
#include <vector>

#include "absl/synchronization/mutex.h"
#include "common/console.h"
#include "controller/cli/cli.h"

int main(int argc, char** argv) {
  using labtrace::controller::CliEnvironment;
  namespace console = labtrace::console;
  const std::vector<std::string> args = console::Utf8Arguments(argc, argv);
  console::RaiseFileLimit();
#ifdef NDEBUG
  // Abseil's mutex deadlock detection (gRPC locks absl mutexes) was a fifth
  // of the controller's CPU at 10,000 hosts; debug builds keep it.
  absl::SetMutexDeadlockDetectionMode(absl::OnDeadlockCycle::kIgnore);
#endif

  // The first Ctrl-C (or SIGTERM) asks the running command to stop cleanly;
  // the second exits at once.
  std::mutex mu;
  std::function<void()> handler;
  console::InstallStopHandler([&](const console::StopRequest& r) {
    if (r.count > 1) {
      std::cerr << "\nlabtrace: interrupted again; exiting now\n";
      std::_Exit(130);
    }
    std::cerr << "\nlabtrace: interrupted (" << r.what
              << "); stopping this run's traces and collecting what exists "
                 "(Ctrl-C again to quit at once)\n";
    std::function<void()> h;
    {
      std::lock_guard<std::mutex> lock(mu);
      h = handler;
    }
    if (!h) std::_Exit(130);
    h();
  });

  CliEnvironment env;
  env.out = &std::cout;
  env.err = &std::cerr;
  env.err_is_terminal = console::IsTerminal(stderr);
  env.on_interrupt = [&](std::function<void()> h) {
    std::lock_guard<std::mutex> lock(mu);
    handler = std::move(h);
  };
  if (const char* inv = std::getenv("LABTRACE_INVENTORY"))
    env.inventory_env = inv;
  std::vector<const char*> argv_utf8 = console::ArgvPointers(args);
  const int code = labtrace::controller::RunCli(
      static_cast<int>(args.size()), argv_utf8.data(), env);
  std::cout.flush();
  std::_Exit(code);  // The stop handler's thread never ends on its own.
}
