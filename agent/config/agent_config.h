// AgentConfig: everything the agent is told by its YAML config file and
// command-line flags (flags win). See deploy/agent.example.yaml for the file
// and `labtrace-agent --help` for the flags.
//
//   absl::StatusOr<AgentConfig> config = ParseAgentCommandLine(argc, argv);
//
// main.cc calls ParseAgentCommandLine; tests build AgentConfig directly or
// through LoadAgentConfigYaml.

#ifndef LABTRACE_AGENT_CONFIG_AGENT_CONFIG_H_
#define LABTRACE_AGENT_CONFIG_AGENT_CONFIG_H_

#include <filesystem>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"

namespace labtrace::agent {

// One entry of the profile catalog: a name clients use, and what it records.
struct ProfileSpec {
  std::string name;
  std::string backend;  // "wpr" or "perf"
  std::string description;
  // wpr: the profiles given to `wpr -start` (one -start each): a built-in
  // WPR profile ("GeneralProfile", "CPU") or "file.wprp!Name". The prefix
  // "embedded:" names a profile file built into the agent
  // ("embedded:labtrace.wprp!Labtrace"), written to <data_dir>/profiles.
  // perf: arguments placed after `perf record -a` (events, frequency, -g).
  std::vector<std::string> args;
  bool file_mode = true;    // Supports TRACE_MODE_FILE.
  bool memory_mode = true;  // Supports TRACE_MODE_MEMORY.
};

struct WprConfig {
  std::string path =
      "wpr.exe";             // Executable; bare names are looked up in PATH.
  bool skip_pdb_gen = true;  // Pass -skipPdbGen on stop (much faster).
  absl::Duration start_timeout = absl::Seconds(60);
  absl::Duration stop_timeout = absl::Seconds(600);
  absl::Duration cancel_timeout = absl::Seconds(60);
  // At start, cancel WPR instances named labtrace_* that ETW reports running
  // but no journal entry explains (one agent per machine owns that prefix).
  bool cancel_unjournaled = true;
};

struct PerfConfig {
  std::string path = "perf";
  // Time perf gets to finish its file after SIGINT before it is killed.
  absl::Duration stop_timeout = absl::Seconds(120);
  // How long a fresh perf process must survive to count as started.
  absl::Duration start_check = absl::Milliseconds(300);
  // Ring size for MEMORY mode (`perf record --overwrite -m`), in pages per CPU.
  int memory_mode_pages = 1024;
};

// Access roles, nested: admin > control > read (see service/auth.h).
enum class Role { kRead = 1, kControl = 2, kAdmin = 3 };

// A bearer token the agent accepts: its name (for the audit log), its role
// and the SHA-256 (lowercase hex) of the token. The token itself is never
// stored: `printf %s "$TOKEN" | sha256sum`.
struct TokenSpec {
  std::string name;
  Role role = Role::kRead;
  std::string sha256;
};

// TLS for the gRPC listener. cert and key: PEM files. client_ca_file (PEM)
// turns on mutual TLS: clients must present a certificate from that CA.
struct TlsConfig {
  std::string cert_file;
  std::string key_file;
  std::string client_ca_file;
  bool enabled() const { return !cert_file.empty(); }
};

// Agent-side commands (RunCommand): off unless enabled, allow-listed only.
struct ExecConfig {
  bool enabled = false;
  // Programs that may run, matched exactly against argv[0] (write full paths
  // to pin the binary; a bare name is looked up in PATH).
  std::vector<std::string> allow;
  absl::Duration max_timeout = absl::Hours(1);
  // Output kept in the log artifact (the tail, if a program writes more).
  std::size_t max_output_bytes = 16 << 20;
};

// Threads and concurrency per kind of call (service/agent_pools.h).
struct PoolConfig {
  int emergency_threads = 4;  // StopAllTraces, fence.
  int control_threads = 16;   // Start/stop/cancel/delete/keep-alive.
  int max_commands = 32;      // RunCommand calls running at once.
  int max_downloads = 16;     // FetchArtifact streams at once (all clients).
  int download_threads = 4;   // Chunk reads of those streams.
  // A download whose client reads nothing for this long is cancelled.
  absl::Duration download_stall_timeout = absl::Seconds(60);
};

// The REST listener's own bounds (service/http_server.h).
struct RestLimitsConfig {
  int max_connections = 256;  // More are answered 503 and closed.
  // A request's headers (and then its body) must arrive within this long.
  absl::Duration request_timeout = absl::Seconds(10);
  // An idle keep-alive connection is closed after this long.
  absl::Duration idle_timeout = absl::Seconds(30);
};

struct AgentConfig {
  std::string listen = "127.0.0.1:7411";
  // REST/JSON mirror; "off" disables it.
  std::string rest_listen = "127.0.0.1:7412";
  std::filesystem::path data_dir;  // Default: see DefaultDataDir().
  int max_sessions = 8;
  absl::Duration max_duration = absl::Hours(4);
  // Disk guard: below this much free space on the data dir's volume,
  // StartTrace is refused and running traces are stopped (0: off).
  std::uint64_t min_free_bytes = 1ull << 30;
  // Default and largest byte limit of one session (0: none).
  std::uint64_t max_session_bytes = 0;
  // Longest lease a StartTrace may ask for.
  absl::Duration max_lease = absl::Hours(24);
  // Threads of gRPC's synchronous services (server reflection); our own
  // calls run on the pools below.
  int max_threads = 8;
  PoolConfig pools;
  RestLimitsConfig rest;
  std::uint32_t default_chunk_bytes = 1 << 20;
  // zstd level of compressed downloads (gRPC chunks, REST bodies): 1 is
  // fast enough to keep a 1 Gbit/s link full on one core for ETL.
  int zstd_level = 1;
  std::string log_level = "info";
  // Also log to this file (rotated at 10 MiB, 5 kept). Empty: stderr only,
  // except for the Windows service, which logs to <data_dir>/agent.log.
  std::filesystem::path log_file;
  // Allow listening on a non-loopback address with neither TLS nor tokens.
  // The agent starts traces and (if enabled) runs commands: without them
  // anyone who can reach the port can do that.
  bool insecure = false;
  TlsConfig tls;
  std::vector<TokenSpec> tokens;  // Empty: no authentication.
  // Audit log of mutating calls; empty means <data_dir>/audit.log.
  std::string audit_log;
  WprConfig wpr;
  PerfConfig perf;
  ExecConfig exec;
  // Profile catalog. Empty after parsing means "use DefaultProfiles()".
  std::vector<ProfileSpec> profiles;
};

// The default catalog: `cpu` and `sched` (perf) on Linux; `default`
// (embedded WPR profile), `cpu` and `general` (built-in WPR profiles) on
// Windows.
std::vector<ProfileSpec> DefaultProfiles();

// /var/lib/labtrace on Linux, %ProgramData%\labtrace on Windows.
std::filesystem::path DefaultDataDir();

// The config file read when --config is not given, if it exists: on Windows
// %ProgramData%\labtrace\agent.yaml (beside the default data dir; what the
// service reads). Empty on Linux, where the systemd unit names its config.
std::filesystem::path DefaultConfigPath();

// Applies a YAML document onto `config` (fields absent keep their values).
// Errors name the file (`source`) and the line where yaml-cpp gives one.
absl::Status ApplyAgentConfigYaml(const std::string& yaml,
                                  const std::string& source,
                                  AgentConfig* config);

// True for 127.0.0.0/8, localhost and [::1] listen addresses.
bool IsLoopbackListenAddress(const std::string& listen);

// Checks values (ranges, profile names and backends, duplicate profiles,
// a non-loopback listen address without --insecure).
absl::Status ValidateAgentConfig(const AgentConfig& config);

// Result of parsing the command line: either a config to run with, or text
// to print and exit (for --help / --version).
struct AgentCommandLine {
  AgentConfig config;
  std::string print_and_exit;  // Non-empty: print this and exit 0.
  std::string port_file;       // --port-file: where to write the bound port.
  // The config file that was read ("" if none).
  std::filesystem::path config_path;
};

// Parses flags (and the --config file they name) into a validated config.
absl::StatusOr<AgentCommandLine> ParseAgentCommandLine(int argc,
                                                       const char* const* argv);

// The --help text.
std::string AgentUsage();

}  // namespace labtrace::agent

#endif  // LABTRACE_AGENT_CONFIG_AGENT_CONFIG_H_
