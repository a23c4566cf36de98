// labtrace-agent: flag parsing and wiring only; see
// agent/service/agent_server.h.

#include <signal.h>

#include <cstdio>
#include <fstream>
#include <iostream>
#include <thread>

#include "agent/config/agent_config.h"
#include "agent/service/agent_server.h"
#include "common/logging.h"
#include "spdlog/spdlog.h"

int main(int argc, char** argv) {
  using namespace labtrace;
  absl::StatusOr<agent::AgentCommandLine> cmd =
      agent::ParseAgentCommandLine(argc, argv);
  if (!cmd.ok()) {
    std::cerr << "labtrace-agent: " << cmd.status().message() << "\n";
    return 2;
  }
  if (!cmd->print_and_exit.empty()) {
    std::cout << cmd->print_and_exit;
    return 0;
  }
  if (absl::Status s = SetupLogging(cmd->config.log_level); !s.ok()) {
    std::cerr << "labtrace-agent: " << s.message() << "\n";
    return 2;
  }
  // Block the stop signals in every thread; one thread waits for them.
  sigset_t stop_signals;
  sigemptyset(&stop_signals);
  sigaddset(&stop_signals, SIGINT);
  sigaddset(&stop_signals, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &stop_signals, nullptr);
  signal(SIGPIPE, SIG_IGN);

  absl::StatusOr<std::unique_ptr<agent::AgentServer>> server =
      agent::AgentServer::Start(cmd->config);
  if (!server.ok()) {
    spdlog::critical("cannot start: {}", server.status().ToString());
    return 1;
  }
  if (!cmd->port_file.empty()) {
    std::ofstream(cmd->port_file + ".tmp") << (*server)->port() << "\n"
                                           << (*server)->rest_port() << "\n";
    std::rename((cmd->port_file + ".tmp").c_str(), cmd->port_file.c_str());
  }
  std::thread waiter([&] {
    int sig = 0;
    sigwait(&stop_signals, &sig);
    spdlog::info(
        "signal {}: shutting down (active traces are stopped and kept)", sig);
    // No grace period: idle client connections would hold a graceful gRPC
    // shutdown for seconds. Calls in flight are cancelled for their clients,
    // but their work completes (a stop in progress still stores its file),
    // and Shutdown then stops and keeps every active trace.
    (*server)->Shutdown(absl::ZeroDuration());
  });
  (*server)->Wait();
  waiter.join();
  spdlog::info("labtrace-agent stopped");
  return 0;
}
