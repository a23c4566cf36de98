#include "controller/cli/args.h"

#include <optional>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "controller/cli/commands.h"

namespace labtrace::controller {

const char kExitCodesHelp[] = R"(Exit codes:
  0    every host did what was asked
  2    usage or configuration error (nothing was sent)
  3    some host unreachable or timed out (the others were done)
  4    some operation failed (an agent refused; its message is shown)
  5    data problem (a downloaded file did not match the agent's sha256,
       or lost events with --fail-on-lost-events)
  130  interrupted (Ctrl-C)
  1    internal error
The worst applies, in the order 130, 5, 4, 3.
)";;

const char kCommonFlags[] = R"(Common flags:
  --inventory FILE     Hosts (YAML). Default $LABTRACE_INVENTORY, else
                       ./labtrace-inventory.yaml. See deploy/inventory.example.yaml.
  --hosts EXPR         Names (vm1,vm2) or label selectors (role=driver,os=linux;
                       all must match). Default: every host.
  --parallel N         Hosts in flight at once. Default 256.
  --timeout D          Deadline per host (e.g. 30s, 10m). Default depends on the
                       command (30s; stop, stop-all: 11m).
  --connect-timeout D  Give up connecting after D. Default 3s (inventory
                       defaults.connect_timeout).
  --json               Machine-readable output on stdout.
  --no-compress        Downloads (fetch, stop --collect, run) without zstd on
                       the wire (default: compressed; the files are the same).
)";;

const std::vector<CommandSpec>& Commands() {
  static const std::vector<CommandSpec> kCommands = {
      {"info",
       "per host: reachable?, version, OS, backends, profiles, sessions, "
       "disk, fence",
       "labtrace info [--hosts EXPR] [--json]\n\n"
       "Asks every selected agent to describe itself. Unreachable hosts are "
       "listed\n"
       "as such; the exit code says whether all answered. A fenced agent "
       "shows\n"
       "who fenced it, when and why.\n",
       {},
       {},
       0,
       absl::Seconds(30),
       &InfoCommand},
      {"status",
       "active trace sessions across the fleet",
       "labtrace status [--hosts EXPR] [--all] [--json]\n\n"
       "Lists the active sessions of every selected agent (--all: also the "
       "ones\n"
       "that finished recently, with why they stopped), with elapsed time, "
       "bytes\n"
       "recorded so far and when their lease runs out.\n",
       {},
       {"all"},
       0,
       absl::Seconds(30),
       &StatusCommand},
      {"start",
       "start a named trace on every selected host",
       "labtrace start NAME --profile P [--mode file|memory] [--run-id R]\n"
       "               [--phase X] [--max-duration D] [--max-bytes N]\n"
       "               [--lease D [--lease-holder H]] [--label k=v]... "
       "[--sync]\n\n"
       "Starts trace operation NAME on every selected host at once. The "
       "profile\n"
       "is a name from the agents' catalogs (`labtrace info` lists them).\n"
       "--lease D makes it a dead-man switch: unless `labtrace keepalive`\n"
       "renews it within D, the agent stops the trace (file kept, marked\n"
       "lease_expired). The holder defaults to the run id.\n"
       "--sync: every host starts at one agreed instant. Each agent's clock\n"
       "offset is estimated first (lowest-RTT of 4 round trips), the\n"
       "agents prepare, wait for the instant in their own clock, then start;\n"
       "the spread of the actual starts and the offsets are reported.\n"
       "Example: labtrace start unit_tests --profile cpu --run-id nightly-42\n",
       {"profile", "mode", "run-id", "phase", "max-duration", "label", "lease",
        "lease-holder", "max-bytes"},
       {"sync"},
       1,
       absl::Seconds(90),
       &StartCommand},
      {"stop",
       "stop a named trace everywhere (optionally --collect DIR)",
       "labtrace stop NAME [--collect DIR]\n\n"
       "Stops NAME on every selected host; each host keeps the file as an\n"
       "artifact. With --collect DIR the files are also downloaded into\n"
       "DIR/<run_id>/<host>/ (DIR/<host>/ when the trace has no run id), "
       "verified\n"
       "against the agent's sha256. Stopping a stopped trace returns its "
       "file.\n",
       {"collect"},
       {},
       1,
       absl::Minutes(11),
       &StopCommand},
      {"cancel",
       "stop a named trace everywhere without keeping files",
       "labtrace cancel NAME\n\n"
       "Also ends the recording a failed stop left running (the agent keeps\n"
       "such a trace as FAILED until its recording is ended).\n",
       {},
       {},
       1,
       absl::Seconds(90),
       &CancelCommand},
      {"stop-all",
       "EMERGENCY: stop every trace (and step command) on every agent",
       "labtrace stop-all [--discard] [--fence --reason TEXT]\n\n"
       "Every selected agent ends its running step commands (their output is\n"
       "kept) and stops every active session, in parallel, within the "
       "deadline\n"
       "(--timeout, default 11m; stops of WPR traces can take minutes). Files "
       "are\n"
       "kept unless --discard. Agents answer even when busy: stop-all has "
       "threads\n"
       "of its own there, and busy answers are retried. Safe to repeat.\n"
       "--fence: afterwards every agent refuses to start traces or commands\n"
       "(FAILED_PRECONDITION, with who, when and --reason) until `labtrace\n"
       "unfence`; the fence survives agent restarts. Needs the admin role.\n",
       {"reason"},
       {"discard", "fence"},
       0,
       absl::Minutes(11),
       &StopAllCommand},
      {"unfence",
       "lift the fence of `stop-all --fence`",
       "labtrace unfence [--hosts EXPR]\n\n"
       "The selected agents accept trace starts and commands again. Admin "
       "role.\n",
       {},
       {},
       0,
       absl::Seconds(30),
       &UnfenceCommand},
      {"keepalive",
       "renew the leases of a run's (or holder's) traces",
       "labtrace keepalive (--run R | --holder H)\n\n"
       "Renews, on every selected agent, the leases of the active traces of "
       "run R\n"
       "or started with --lease-holder H. `labtrace run` does this by itself "
       "while\n"
       "it runs.\n",
       {"run", "holder"},
       {},
       0,
       absl::Seconds(30),
       &KeepAliveCommand},
      {"artifacts",
       "list trace files on the agents",
       "labtrace artifacts [--run R] [--name N]\n",
       {"run", "name"},
       {},
       0,
       absl::Seconds(30),
       &ArtifactsCommand},
      {"fetch",
       "download trace files into a folder, or send them to object storage",
       "labtrace fetch --out DIR [--run R] [--name N]\n"
       "       labtrace fetch --run R --egress s3://BUCKET/PREFIX [--name N]\n"
       "       labtrace fetch --from s3://BUCKET/PREFIX/RUN_ID --out DIR\n\n"
       "--out DIR: downloads the matching artifacts of every selected host\n"
       "into DIR/<run>/<host>/ (DIR/<host>/ without --run), in parallel,\n"
       "zstd-compressed on the wire, each file checked against the agent's\n"
       "sha256; resumable: rerun the same command after an interruption.\n"
       "--egress URL: the agents upload the files straight to S3-compatible\n"
       "storage as URL/<run>/<host>/<file> (multipart above 64 MiB, each\n"
       "object with its sha256 as x-amz-meta-sha256); this controller only\n"
       "presigns URLs, so the agents hold no keys. Objects already there\n"
       "with the right digest are skipped: rerun to resume. The run's\n"
       "manifest.json in the store is updated.\n"
       "--from URL: downloads a run from the store (its manifest.json first)\n"
       "into DIR/<run_id>/<host>/ and verifies every file's sha256; needs no\n"
       "inventory. DIR/<run_id>/ gets the manifest (naming each file where\n"
       "it now is) and a report.html built from it.\n"
       "Object store: credentials from "
       "AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY\n"
       "(+AWS_SESSION_TOKEN) or ~/.aws/credentials (AWS_PROFILE), endpoint\n"
       "from AWS_ENDPOINT_URL (non-AWS stores; path-style addressing), region\n"
       "from AWS_REGION; the inventory's egress: block can set url, endpoint,\n"
       "region and profile.\n"
       "Examples:\n"
       "  labtrace fetch --run nightly-42 --out ./traces\n"
       "  labtrace fetch --run nightly-42 --egress s3://lab-traces/ci\n"
       "  labtrace fetch --from s3://lab-traces/ci/nightly-42 --out ./traces\n",
       {"out", "run", "name", "egress", "from"},
       {},
       0,
       absl::Hours(1),
       &FetchCommand},
      {"run",
       "run a lab plan: setup, tests, cleanup, each step traced",
       "labtrace run PLAN.yaml --out DIR [--run-id R] [--lease D]\n"
       "             [--fail-on-lost-events] [--egress s3://BUCKET/PREFIX]\n"
       "             [--junit FILE]\n\n"
       "Runs the plan's setup steps, then its tests, then cleanup (always),\n"
       "each step its own trace operation on every host, then collects the\n"
       "run's files into DIR/<run_id>/<host>/ with "
       "DIR/<run_id>/manifest.json.\n"
       "See deploy/plans/ for examples. Ctrl-C stops the run's traces, runs\n"
       "cleanup and still collects (a second Ctrl-C also cuts cleanup short).\n"
       "Every trace is leased (--lease, default 60s; 0 turns it off) and the\n"
       "lease renewed while the run goes on: if this controller dies, the\n"
       "agents stop the run's traces within the lease.\n"
       "Every trace file is checked on its agent; problems (lost events,\n"
       "truncation) are printed as warnings and kept in the manifest.\n"
       "--fail-on-lost-events: exit 5 if any collected trace lost events.\n"
       "--egress URL: instead of collecting, the agents upload the run's\n"
       "files to object storage (URL/<run_id>/<host>/<file>, with\n"
       "URL/<run_id>/manifest.json); see `labtrace fetch --help` for\n"
       "credentials. Files that did not make it are listed with the command\n"
       "that resumes them (labtrace fetch --run R --egress URL).\n"
       "--junit FILE: also writes JUnit XML for CI test reporters: one\n"
       "testcase per step and host (classname = phase, name = step@host),\n"
       "failures with the agent's message and exit code, the step's log in\n"
       "system-out, and each trace file attached ([[ATTACHMENT|path]] lines\n"
       "and <property name=\"attachment\"> entries; paths relative to FILE's\n"
       "folder when the run folder is below it).\n",
       {"out", "run-id", "lease", "egress", "junit"},
       {"fail-on-lost-events"},
       1,
       absl::Minutes(1),
       &RunCommand},
      {"exec",
       "run one command on the hosts under its own trace, and collect it",
       "labtrace exec NAME [--profile P] [--collect DIR] [--run-id R]\n"
       "              [--timeout D] [--hosts EXPR] -- COMMAND [ARGS...]\n\n"
       "The one-liner for a CI step: on every selected agent, starts trace\n"
       "NAME, runs COMMAND (which must be on the agent's allow-list,\n"
       "exec.allow), stops the trace when it ends, and keeps its output as a\n"
       "log artifact. The output is printed as it arrives (stdout and\n"
       "stderr merged); with several hosts, line by line, each line prefixed\n"
       "with its host's name.\n"
       "--profile P: default \"default\" if the agent has it, else its first.\n"
       "--collect DIR: downloads the trace and log to DIR/<run>/<host>/,\n"
       "verified. --run-id R: default exec-<NAME>-<UTC stamp>.\n"
       "--timeout D: the command's time limit (default 10m).\n"
       "Exit code: with one host, the command's own exit code (or the usual\n"
       "codes if it could not run: 3 unreachable, 4 failed to start); with\n"
       "several, 0 if all exited 0, else 4 (3 if a host was unreachable).\n"
       "Examples:\n"
       "  labtrace exec unit_tests --hosts vm3 --collect ./traces -- \\\n"
       "      C:\\lab\\run_tests.exe --suite unit\n"
       "  labtrace exec smoke --profile cpu -- /usr/bin/make check\n",
       {"profile", "collect", "run-id"},
       {},
       1,
       absl::Minutes(10),
       &ExecCommand},
      {"report",
       "(re)write a run folder's report.html from its manifest",
       "labtrace report RUN_DIR\n\n"
       "Writes RUN_DIR/report.html from RUN_DIR/manifest.json (what `labtrace\n"
       "run` writes after every run): one self-contained file (no network)\n"
       "with warnings, a summary, a timeline (a lane per host, a bar per\n"
       "step), a steps x hosts table and every file with size, sha256, lost\n"
       "events and problems, linked by relative path. No agent needed.\n"
       "Exit code 2 if RUN_DIR has no manifest.json, 5 if it is unreadable.\n",
       {},
       {},
       1,
       absl::Seconds(1),
       &ReportCommand,
       /*needs_hosts=*/false},
      {"inspect",
       "check local trace files (.etl, .perf.data): lost events, truncation",
       "labtrace inspect FILE... [--providers] [--json]\n\n"
       "Reads each file locally (no agent needed) and prints what it holds: "
       "for\n"
       ".etl, the session, duration, buffers found/written, events and "
       "buffers\n"
       "lost, OS, processors, log file mode and record count (compressed\n"
       "buffers included; \"+\" marks a count that could not be completed);\n"
       "for .perf.data, the header, records and lost events. Exit code 5 if\n"
       "any file has a problem (truncated, not closed, lost events, bad "
       "header).\n"
       "--providers: for .etl, every provider's events and bytes, largest\n"
       "first (\"Why is this ETL 2.5 GB?\"): provider name (else GUID; kernel\n"
       "events by group, e.g. Kernel/DiskIo), where the name came from,\n"
       "events, bytes, share of the bytes; and the lost events.\n",
       {},
       {"providers"},
       -1,
       absl::Seconds(1),
       &InspectCommand,
       /*needs_hosts=*/false},
  };
  return kCommands;
}

const CommandSpec* FindCommand(absl::string_view name) {
  for (const CommandSpec& c : Commands()) {
    if (name == c.name) return &c;
  }
  return nullptr;
}

namespace {

const std::set<std::string> kGlobalValueFlags = {
    "inventory", "hosts", "parallel", "timeout", "connect-timeout"};
const std::set<std::string> kGlobalBoolFlags = {"json", "help", "no-compress"};

}  // namespace

absl::StatusOr<Args> ParseArgs(int argc, const char* const* argv) {
  Args a;
  std::vector<std::string> rest;
  for (int i = 1; i < argc; ++i) rest.push_back(argv[i]);
  std::size_t i = 0;
  // The command is the first non-flag word. Common flags may come before it
  // (labtrace --inventory lab.yaml info).
  std::vector<std::string> leading;
  for (; i < rest.size(); ++i) {
    if (rest[i] == "--help" || rest[i] == "-h") {
      a.help = true;
      continue;
    }
    if (!absl::StartsWith(rest[i], "-")) break;
    std::string name = rest[i].substr(2);
    const std::string bare = name.substr(0, name.find('='));
    if (kGlobalBoolFlags.count(bare)) {
      leading.push_back(rest[i]);
      continue;
    }
    if (!kGlobalValueFlags.count(bare)) {
      return absl::InvalidArgumentError(
          absl::StrCat("unknown flag ", rest[i],
                       " before the command; see labtrace --help"));
    }
    leading.push_back(rest[i]);
    if (name.find('=') == std::string::npos && i + 1 < rest.size())
      leading.push_back(rest[++i]);
  }
  if (i == rest.size()) return a;
  a.command = FindCommand(rest[i]);
  if (a.command == nullptr) {
    return absl::InvalidArgumentError(
        absl::StrCat("unknown command \"", rest[i], "\"; see labtrace --help"));
  }
  // Parse the leading common flags as if they followed the command.
  std::vector<std::string> after(leading);
  after.insert(after.end(), rest.begin() + static_cast<std::ptrdiff_t>(i) + 1,
               rest.end());
  rest = std::move(after);
  for (i = 0; i < rest.size(); ++i) {
    const std::string& arg = rest[i];
    if (arg == "--") {
      a.trailing.assign(rest.begin() + static_cast<std::ptrdiff_t>(i) + 1,
                        rest.end());
      break;
    }
    if (arg == "--help" || arg == "-h") {
      a.help = true;
      continue;
    }
    if (!absl::StartsWith(arg, "--")) {
      a.positional.push_back(arg);
      continue;
    }
    std::string name = arg.substr(2);
    std::optional<std::string> value;
    if (auto eq = name.find('='); eq != std::string::npos) {
      value = name.substr(eq + 1);
      name = name.substr(0, eq);
    }
    const bool is_value =
        kGlobalValueFlags.count(name) || a.command->value_flags.count(name);
    const bool is_bool =
        kGlobalBoolFlags.count(name) || a.command->bool_flags.count(name);
    if (!is_value && !is_bool) {
      return absl::InvalidArgumentError(
          absl::StrCat("unknown flag --", name, " for `", a.command->name,
                       "`; see labtrace ", a.command->name, " --help"));
    }
    if (is_bool) {
      if (value)
        return absl::InvalidArgumentError(
            absl::StrCat("--", name, " takes no value"));
      a.flags.insert(name);
      continue;
    }
    if (!value) {
      if (i + 1 >= rest.size()) {
        return absl::InvalidArgumentError(
            absl::StrCat("--", name, " needs a value"));
      }
      value = rest[++i];
    }
    a.values[name].push_back(*value);
  }
  if (a.flags.count("help")) a.help = true;
  const bool count_ok =
      a.command->positional < 0
          ? !a.positional.empty()
          : static_cast<int>(a.positional.size()) == a.command->positional;
  if (!a.help && !count_ok) {
    return absl::InvalidArgumentError(absl::StrCat(
        "`labtrace ", a.command->name, "` takes ",
        a.command->positional < 0 ? std::string("one or more")
                                  : std::to_string(a.command->positional),
        " argument(s), got ", a.positional.size(), "; usage:\n  ",
        a.command->usage));
  }
  return a;
}

}  // namespace labtrace::controller
