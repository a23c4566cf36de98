// The `labtrace` commands, one function each, grouped by file:
// session_commands.cc (info, status, start, stop, cancel, stop-all,
// unfence, keepalive), artifact_commands.cc (artifacts, fetch, inspect),
// run_command.cc (run), report_command.cc (report). Each returns the
// process exit code.

#ifndef LABTRACE_CONTROLLER_CLI_COMMANDS_H_
#define LABTRACE_CONTROLLER_CLI_COMMANDS_H_

namespace labtrace::controller {

class CliContext;

int InfoCommand(CliContext& ctx);
int StatusCommand(CliContext& ctx);
int StartCommand(CliContext& ctx);
int StopCommand(CliContext& ctx);
int CancelCommand(CliContext& ctx);
int StopAllCommand(CliContext& ctx);
int UnfenceCommand(CliContext& ctx);
int KeepAliveCommand(CliContext& ctx);
int ArtifactsCommand(CliContext& ctx);
int FetchCommand(CliContext& ctx);
int InspectCommand(CliContext& ctx);
int RunCommand(CliContext& ctx);
int ExecCommand(CliContext& ctx);
int ReportCommand(CliContext& ctx);

}  // namespace labtrace::controller

#endif  // LABTRACE_CONTROLLER_CLI_COMMANDS_H_
