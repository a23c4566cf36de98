// labtrace-agent: picks how the agent runs (foreground, Windows service, or
// the service install/uninstall commands); see agent/daemon/agent_daemon.h.

#include <iostream>
#include <string>
#include <vector>

#include "agent/config/agent_config.h"
#include "agent/daemon/agent_daemon.h"
#include "common/console.h"

int main(int argc, char** argv) {
  using namespace labtrace;
  const std::vector<std::string> args = console::Utf8Arguments(argc, argv);
  if (args.size() >= 2 && args[1] == "service") {
    return agent::RunServiceCommand(
        std::vector<std::string>(args.begin() + 2, args.end()), std::cout,
        std::cerr);
  }
  std::vector<const char*> argv_utf8 = console::ArgvPointers(args);
  absl::StatusOr<agent::AgentCommandLine> cmd = agent::ParseAgentCommandLine(
      static_cast<int>(args.size()), argv_utf8.data());
  if (!cmd.ok()) {
    std::cerr << "labtrace-agent: " << cmd.status().message() << "\n";
    return 2;
  }
  if (!cmd->print_and_exit.empty()) {
    std::cout << cmd->print_and_exit;
    return 0;
  }
  return agent::RunAgentInConsole(*cmd);
}
