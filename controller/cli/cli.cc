#include "controller/cli/cli.h"

#include <string>

#include "absl/strings/str_cat.h"
#include "controller/cli/args.h"
#include "controller/cli/cli_context.h"

namespace labtrace::controller {

std::string ControllerUsage() {
  std::string s =
      "labtrace: drive labtrace agents on many machines at once.\n\n"
      "Usage: labtrace COMMAND [ARGS] [FLAGS]\n\nCommands:\n";
  for (const CommandSpec& c : Commands()) {
    s += absl::StrCat("  ", c.name,
                      std::string(12 - std::string(c.name).size(), ' '),
                      c.summary, "\n");
  }
  s += "\n";
  s += kCommonFlags;
  s += "\n";
  s += kExitCodesHelp;
  s += "\nExamples:\n"
       "  labtrace info\n"
       "  labtrace start unit_tests --profile cpu --hosts role=driver\n"
       "  labtrace stop unit_tests --collect ./traces\n"
       "  labtrace run deploy/plans/quickstart.yaml --out ./runs\n"
       "  labtrace stop-all            # emergency: every trace, every host\n"
       "  labtrace stop-all --fence --reason \"ETW storm; investigating\"\n"
       "\n`labtrace COMMAND --help` explains each command.\n";
  return s;
}

int RunCli(int argc, const char* const* argv, const CliEnvironment& env) {
  absl::StatusOr<Args> args = ParseArgs(argc, argv);
  if (!args.ok()) {
    *env.err << "labtrace: " << args.status().message() << "\n";
    return kExitUsage;
  }
  if (args->command == nullptr) {
    *env.out << ControllerUsage();
    return args->help ? kExitOk : kExitUsage;
  }
  if (args->help) {
    *env.out << "Usage: " << args->command->usage << "\n"
             << kCommonFlags << "\n"
             << kExitCodesHelp;
    return kExitOk;
  }
  const CommandSpec& command = *args->command;
  // A run brought down from object storage needs no inventory.
  const bool from_store =
      std::string(command.name) == "fetch" && args->HasValue("from");
  CliContext ctx(env, std::move(*args));
  ctx.set_command_line(std::vector<std::string>(argv, argv + argc));
  if (command.needs_hosts && !from_store) {
    if (absl::Status s = ctx.Setup(); !s.ok()) {
      *env.err << "labtrace: " << s.message() << "\n";
      return kExitUsage;
    }
  }
  return command.run(ctx);
}

}  // namespace labtrace::controller
