// labtrace: the controller CLI. Signal wiring only; see controller/cli/cli.h.

#include <signal.h>
#include <unistd.h>

#include <cstdlib>
#include <iostream>
#include <mutex>
#include <thread>

#include "controller/cli/cli.h"

int main(int argc, char** argv) {
  using labtrace::controller::CliEnvironment;
  // Ctrl-C / SIGTERM are handled by a thread (never in a signal handler):
  // the first asks the command to stop cleanly, the second exits at once.
  sigset_t stop_signals;
  sigemptyset(&stop_signals);
  sigaddset(&stop_signals, SIGINT);
  sigaddset(&stop_signals, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &stop_signals, nullptr);
  signal(SIGPIPE, SIG_IGN);

  std::mutex mu;
  std::function<void()> handler;
  std::thread([&] {
    int count = 0;
    for (;;) {
      int sig = 0;
      if (sigwait(&stop_signals, &sig) != 0) continue;
      if (++count > 1) {
        std::cerr << "\nlabtrace: interrupted again; exiting now\n";
        std::_Exit(130);
      }
      std::cerr << "\nlabtrace: interrupted; stopping this run's traces and "
                   "collecting what "
                   "exists (Ctrl-C again to quit at once)\n";
      std::lock_guard<std::mutex> lock(mu);
      if (handler) {
        handler();
      } else {
        std::_Exit(130);
      }
    }
  }).detach();

  CliEnvironment env;
  env.out = &std::cout;
  env.err = &std::cerr;
  env.err_is_terminal = isatty(STDERR_FILENO) != 0;
  env.on_interrupt = [&](std::function<void()> h) {
    std::lock_guard<std::mutex> lock(mu);
    handler = std::move(h);
  };
  if (const char* inv = std::getenv("LABTRACE_INVENTORY"))
    env.inventory_env = inv;
  const int code = labtrace::controller::RunCli(argc, argv, env);
  std::cout.flush();
  std::_Exit(code);  // The signal thread is detached and blocked in sigwait.
}
