// The command table of `labtrace` and its argument parser: which commands
// exist, their flags, help texts and default deadlines, and how argv turns
// into an Args (command, positional arguments, flag values).

#ifndef LABTRACE_CONTROLLER_CLI_ARGS_H_
#define LABTRACE_CONTROLLER_CLI_ARGS_H_

#include <map>
#include <set>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"

namespace labtrace::controller {

class CliContext;

struct CommandSpec {
  const char* name;
  const char* summary;
  const char* usage;
  std::set<std::string> value_flags;
  std::set<std::string> bool_flags;
  int positional;  // Exactly this many positional arguments (-1: one or more).
  absl::Duration default_timeout;
  int (*run)(CliContext& ctx);
  bool needs_hosts = true;  // false: runs without an inventory (inspect).
};

const std::vector<CommandSpec>& Commands();
const CommandSpec* FindCommand(absl::string_view name);

struct Args {
  const CommandSpec* command = nullptr;
  std::map<std::string, std::vector<std::string>> values;
  std::set<std::string> flags;
  std::vector<std::string> positional;
  // Everything after a bare "--" (exec's command line), taken as it is.
  std::vector<std::string> trailing;
  bool help = false;

  std::string Get(const std::string& k, const std::string& def = "") const {
    auto it = values.find(k);
    return it == values.end() || it->second.empty() ? def : it->second.back();
  }
  bool Has(const std::string& flag) const { return flags.count(flag) > 0; }
  bool HasValue(const std::string& k) const { return values.count(k) > 0; }
};

absl::StatusOr<Args> ParseArgs(int argc, const char* const* argv);

// Help texts.
extern const char kExitCodesHelp[];
extern const char kCommonFlags[];

}  // namespace labtrace::controller

#endif  // LABTRACE_CONTROLLER_CLI_ARGS_H_
