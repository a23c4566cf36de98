#include "agent/config/agent_config.h"

#include <set>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/strings/string_view.h"
#include "common/file_util.h"
#include "common/names.h"
#include "common/status_macros.h"
#include "common/yaml_util.h"
#include "yaml-cpp/yaml.h"

namespace labtrace::agent {
namespace {

absl::Status Bad(const std::string& source, const YAML::Node& node,
                 absl::string_view msg) {
  return YamlError(source, node, msg);
}

absl::Status ReadProfile(const std::string& source, const YAML::Node& node,
                         ProfileSpec* p) {
  LABTRACE_RETURN_IF_ERROR(
      CheckYamlKeys(source, node, "profile",
                    {"name", "backend", "description", "args", "modes"}));
  if (!node["name"] || !node["backend"]) {
    return Bad(source, node, "a profile needs `name` and `backend`");
  }
  LABTRACE_RETURN_IF_ERROR(YamlReadString(source, node["name"], &p->name));
  LABTRACE_RETURN_IF_ERROR(
      YamlReadString(source, node["backend"], &p->backend));
  if (node["description"]) {
    LABTRACE_RETURN_IF_ERROR(
        YamlReadString(source, node["description"], &p->description));
  }
  if (node["args"]) {
    if (!node["args"].IsSequence()) {
      return Bad(source, node["args"], "`args` must be a list of strings");
    }
    for (const auto& a : node["args"]) {
      std::string s;
      LABTRACE_RETURN_IF_ERROR(YamlReadString(source, a, &s));
      p->args.push_back(s);
    }
  }
  if (node["modes"]) {
    if (!node["modes"].IsSequence()) {
      return Bad(source, node["modes"],
                 "`modes` must be a list: [file, memory]");
    }
    p->file_mode = p->memory_mode = false;
    for (const auto& m : node["modes"]) {
      std::string s;
      LABTRACE_RETURN_IF_ERROR(YamlReadString(source, m, &s));
      if (s == "file") {
        p->file_mode = true;
      } else if (s == "memory") {
        p->memory_mode = true;
      } else {
        return Bad(
            source, m,
            absl::StrCat("unknown mode \"", s, "\"; use file or memory"));
      }
    }
  }
  return absl::OkStatus();
}

}  // namespace

std::vector<ProfileSpec> DefaultProfiles() {
#ifdef _WIN32
  return {
      {"default",
       "wpr",
       "labtrace's embedded profile: CPU samples with stacks, context "
       "switches, processes, threads, images, disk and file I/O",
       {"embedded:labtrace.wprp!Labtrace"},
       true,
       true},
      {"cpu", "wpr", "WPR built-in CPU profile", {"CPU"}, true, true},
      {"general",
       "wpr",
       "WPR built-in GeneralProfile",
       {"GeneralProfile"},
       true,
       true},
  };
#else
  return {
      {"cpu",
       "perf",
       "CPU sampling at 999 Hz on all CPUs with call graphs (perf record -F "
       "999 -g)",
       {"-F", "999", "-g"},
       true,
       true},
      {"sched",
       "perf",
       "scheduler tracepoints: switches, wakeups, migrations, exec/exit "
       "(needs tracefs)",
       {"-e", "sched:sched_switch", "-e", "sched:sched_wakeup", "-e",
        "sched:sched_migrate_task", "-e", "sched:sched_process_exec", "-e",
        "sched:sched_process_exit"},
       true,
       true},
  };
#endif
}

std::filesystem::path DefaultDataDir() {
#ifdef _WIN32
  // _wgetenv: %ProgramData% may hold characters outside the ANSI code page.
  const wchar_t* pd = _wgetenv(L"ProgramData");
  return std::filesystem::path(pd != nullptr ? pd : L"C:\\ProgramData") /
         "labtrace";
#else
  return "/var/lib/labtrace";
#endif
}

std::filesystem::path DefaultConfigPath() {
#ifdef _WIN32
  return DefaultDataDir() / "agent.yaml";
#else
  return {};
#endif
}

absl::Status ApplyAgentConfigYaml(const std::string& yaml,
                                  const std::string& source,
                                  AgentConfig* config) {
  absl::StatusOr<YAML::Node> parsed = ParseYaml(yaml, source);
  if (!parsed.ok()) return parsed.status();
  const YAML::Node& root = *parsed;
  if (root.IsNull()) return absl::OkStatus();  // Empty file.
  try {
    LABTRACE_RETURN_IF_ERROR(CheckYamlKeys(
        source, root, "the agent config",
        {"listen", "data_dir", "log_level", "log_file", "limits", "wpr", "perf",
         "exec", "profiles", "tls", "tokens", "audit_log", "rest_listen"}));
    if (root["listen"]) {
      LABTRACE_RETURN_IF_ERROR(
          YamlReadString(source, root["listen"], &config->listen));
    }
    if (root["data_dir"]) {
      std::string d;
      LABTRACE_RETURN_IF_ERROR(YamlReadString(source, root["data_dir"], &d));
      config->data_dir = PathFromUtf8(d);
    }
    if (root["log_level"]) {
      LABTRACE_RETURN_IF_ERROR(
          YamlReadString(source, root["log_level"], &config->log_level));
    }
    if (root["log_file"]) {
      std::string f;
      LABTRACE_RETURN_IF_ERROR(YamlReadString(source, root["log_file"], &f));
      config->log_file = PathFromUtf8(f);
    }
    if (const YAML::Node l = root["limits"]) {
      LABTRACE_RETURN_IF_ERROR(CheckYamlKeys(
          source, l, "limits",
          {"max_sessions", "max_duration", "max_threads", "chunk_bytes",
           "max_commands", "max_downloads", "control_threads",
           "download_stall_timeout", "min_free_bytes", "max_session_bytes",
           "max_lease", "rest_max_connections", "rest_request_timeout",
           "rest_idle_timeout", "zstd_level"}));
      if (l["zstd_level"]) {
        LABTRACE_RETURN_IF_ERROR(
            YamlReadInt(source, l["zstd_level"], -7, 19, &config->zstd_level));
      }
      if (l["rest_max_connections"]) {
        LABTRACE_RETURN_IF_ERROR(YamlReadInt(source, l["rest_max_connections"],
                                             1, 65536,
                                             &config->rest.max_connections));
      }
      if (l["rest_request_timeout"]) {
        LABTRACE_RETURN_IF_ERROR(YamlReadDuration(
            source, l["rest_request_timeout"], &config->rest.request_timeout));
      }
      if (l["rest_idle_timeout"]) {
        LABTRACE_RETURN_IF_ERROR(YamlReadDuration(
            source, l["rest_idle_timeout"], &config->rest.idle_timeout));
      }
      if (l["max_sessions"]) {
        LABTRACE_RETURN_IF_ERROR(YamlReadInt(source, l["max_sessions"], 1, 64,
                                             &config->max_sessions));
      }
      if (l["max_duration"]) {
        LABTRACE_RETURN_IF_ERROR(
            YamlReadDuration(source, l["max_duration"], &config->max_duration));
      }
      if (l["max_threads"]) {
        LABTRACE_RETURN_IF_ERROR(YamlReadInt(source, l["max_threads"], 2, 1024,
                                             &config->max_threads));
      }
      if (l["min_free_bytes"]) {
        LABTRACE_RETURN_IF_ERROR(YamlReadBytes(source, l["min_free_bytes"],
                                               &config->min_free_bytes));
      }
      if (l["max_session_bytes"]) {
        LABTRACE_RETURN_IF_ERROR(YamlReadBytes(source, l["max_session_bytes"],
                                               &config->max_session_bytes));
      }
      if (l["max_lease"]) {
        LABTRACE_RETURN_IF_ERROR(
            YamlReadDuration(source, l["max_lease"], &config->max_lease));
      }
      if (l["max_commands"]) {
        LABTRACE_RETURN_IF_ERROR(YamlReadInt(source, l["max_commands"], 1, 1024,
                                             &config->pools.max_commands));
      }
      if (l["max_downloads"]) {
        LABTRACE_RETURN_IF_ERROR(YamlReadInt(
            source, l["max_downloads"], 1, 1024, &config->pools.max_downloads));
      }
      if (l["control_threads"]) {
        LABTRACE_RETURN_IF_ERROR(YamlReadInt(source, l["control_threads"], 2,
                                             256,
                                             &config->pools.control_threads));
      }
      if (l["download_stall_timeout"]) {
        LABTRACE_RETURN_IF_ERROR(
            YamlReadDuration(source, l["download_stall_timeout"],
                             &config->pools.download_stall_timeout));
      }
      if (l["chunk_bytes"]) {
        int v = 0;
        LABTRACE_RETURN_IF_ERROR(
            YamlReadInt(source, l["chunk_bytes"], 4096, 2 << 20, &v));
        config->default_chunk_bytes = static_cast<std::uint32_t>(v);
      }
    }
    if (const YAML::Node w = root["wpr"]) {
      LABTRACE_RETURN_IF_ERROR(
          CheckYamlKeys(source, w, "wpr",
                        {"path", "skip_pdb_gen", "start_timeout",
                         "stop_timeout", "cancel_timeout",
                         "cancel_unjournaled"}));
      if (w["path"])
        LABTRACE_RETURN_IF_ERROR(
            YamlReadString(source, w["path"], &config->wpr.path));
      if (w["skip_pdb_gen"]) {
        LABTRACE_RETURN_IF_ERROR(
            YamlReadBool(source, w["skip_pdb_gen"], &config->wpr.skip_pdb_gen));
      }
      if (w["start_timeout"]) {
        LABTRACE_RETURN_IF_ERROR(YamlReadDuration(source, w["start_timeout"],
                                                  &config->wpr.start_timeout));
      }
      if (w["stop_timeout"]) {
        LABTRACE_RETURN_IF_ERROR(YamlReadDuration(source, w["stop_timeout"],
                                                  &config->wpr.stop_timeout));
      }
      if (w["cancel_unjournaled"]) {
        LABTRACE_RETURN_IF_ERROR(YamlReadBool(source, w["cancel_unjournaled"],
                                              &config->wpr.cancel_unjournaled));
      }
      if (w["cancel_timeout"]) {
        LABTRACE_RETURN_IF_ERROR(YamlReadDuration(source, w["cancel_timeout"],
                                                  &config->wpr.cancel_timeout));
      }
    }
    if (const YAML::Node p = root["perf"]) {
      LABTRACE_RETURN_IF_ERROR(CheckYamlKeys(
          source, p, "perf", {"path", "stop_timeout", "memory_mode_pages"}));
      if (p["path"])
        LABTRACE_RETURN_IF_ERROR(
            YamlReadString(source, p["path"], &config->perf.path));
      if (p["stop_timeout"]) {
        LABTRACE_RETURN_IF_ERROR(YamlReadDuration(source, p["stop_timeout"],
                                                  &config->perf.stop_timeout));
      }
      if (p["memory_mode_pages"]) {
        LABTRACE_RETURN_IF_ERROR(YamlReadInt(source, p["memory_mode_pages"], 1,
                                             1 << 20,
                                             &config->perf.memory_mode_pages));
      }
    }
    if (const YAML::Node e = root["exec"]) {
      LABTRACE_RETURN_IF_ERROR(CheckYamlKeys(
          source, e, "exec",
          {"enabled", "allow", "max_timeout", "max_output_bytes"}));
      if (e["enabled"]) {
        LABTRACE_RETURN_IF_ERROR(
            YamlReadBool(source, e["enabled"], &config->exec.enabled));
      }
      if (e["allow"]) {
        if (!e["allow"].IsSequence()) {
          return Bad(source, e["allow"], "`allow` must be a list of programs");
        }
        config->exec.allow.clear();
        for (const auto& a : e["allow"]) {
          std::string prog;
          LABTRACE_RETURN_IF_ERROR(YamlReadString(source, a, &prog));
          config->exec.allow.push_back(prog);
        }
      }
      if (e["max_timeout"]) {
        LABTRACE_RETURN_IF_ERROR(YamlReadDuration(source, e["max_timeout"],
                                                  &config->exec.max_timeout));
      }
      if (e["max_output_bytes"]) {
        int v = 0;
        LABTRACE_RETURN_IF_ERROR(
            YamlReadInt(source, e["max_output_bytes"], 1024, 1 << 30, &v));
        config->exec.max_output_bytes = static_cast<std::size_t>(v);
      }
    }
    if (const YAML::Node t = root["tls"]) {
      LABTRACE_RETURN_IF_ERROR(CheckYamlKeys(
          source, t, "tls", {"cert_file", "key_file", "client_ca_file"}));
      if (t["cert_file"]) {
        LABTRACE_RETURN_IF_ERROR(
            YamlReadString(source, t["cert_file"], &config->tls.cert_file));
      }
      if (t["key_file"]) {
        LABTRACE_RETURN_IF_ERROR(
            YamlReadString(source, t["key_file"], &config->tls.key_file));
      }
      if (t["client_ca_file"]) {
        LABTRACE_RETURN_IF_ERROR(YamlReadString(source, t["client_ca_file"],
                                                &config->tls.client_ca_file));
      }
    }
    if (const YAML::Node toks = root["tokens"]) {
      if (!toks.IsSequence())
        return Bad(source, toks, "`tokens` must be a list");
      config->tokens.clear();
      for (const auto& n : toks) {
        LABTRACE_RETURN_IF_ERROR(
            CheckYamlKeys(source, n, "a token", {"name", "role", "sha256"}));
        if (!n["name"] || !n["role"] || !n["sha256"]) {
          return Bad(source, n, "a token needs name, role and sha256");
        }
        TokenSpec t;
        LABTRACE_RETURN_IF_ERROR(YamlReadString(source, n["name"], &t.name));
        std::string role;
        LABTRACE_RETURN_IF_ERROR(YamlReadString(source, n["role"], &role));
        if (role == "read") {
          t.role = Role::kRead;
        } else if (role == "control") {
          t.role = Role::kControl;
        } else if (role == "admin") {
          t.role = Role::kAdmin;
        } else {
          return Bad(source, n["role"], "role is read, control or admin");
        }
        LABTRACE_RETURN_IF_ERROR(
            YamlReadString(source, n["sha256"], &t.sha256));
        t.sha256 = absl::AsciiStrToLower(t.sha256);
        if (t.sha256.size() != 64 ||
            t.sha256.find_first_not_of("0123456789abcdef") !=
                std::string::npos) {
          return Bad(
              source, n["sha256"],
              "sha256 is 64 hex digits: printf %s \"$TOKEN\" | sha256sum "
              "(never put the token itself here)");
        }
        config->tokens.push_back(std::move(t));
      }
    }
    if (root["rest_listen"]) {
      LABTRACE_RETURN_IF_ERROR(
          YamlReadString(source, root["rest_listen"], &config->rest_listen));
    }
    if (root["audit_log"]) {
      LABTRACE_RETURN_IF_ERROR(
          YamlReadString(source, root["audit_log"], &config->audit_log));
    }
    if (const YAML::Node profiles = root["profiles"]) {
      if (!profiles.IsSequence()) {
        return Bad(source, profiles, "`profiles` must be a list");
      }
      config->profiles.clear();
      for (const auto& node : profiles) {
        ProfileSpec spec;
        LABTRACE_RETURN_IF_ERROR(ReadProfile(source, node, &spec));
        config->profiles.push_back(std::move(spec));
      }
    }
  } catch (const YAML::Exception& e) {
    return absl::InvalidArgumentError(
        absl::StrCat(source, ":", e.mark.line + 1, ": ", e.msg));
  }
  return absl::OkStatus();
}

bool IsLoopbackListenAddress(const std::string& listen) {
  const std::size_t colon = listen.rfind(':');
  std::string host = colon == std::string::npos ? listen : listen.substr(0, colon);
  if (host == "localhost") return true;
  if (host == "[::1]") return true;
  // 127.0.0.0/8 as four decimal octets, nothing else ("127.evil.example" is
  // a name, not a loopback address).
  std::vector<std::string> octets = absl::StrSplit(host, '.');
  if (octets.size() != 4) return false;
  for (std::size_t i = 0; i < 4; ++i) {
    int v = -1;
    if (octets[i].empty() || octets[i].size() > 3 ||
        octets[i].find_first_not_of("0123456789") != std::string::npos ||
        !absl::SimpleAtoi(octets[i], &v) || v < 0 || v > 255) {
      return false;
    }
    if (i == 0 && v != 127) return false;
  }
  return true;
}

absl::Status ValidateAgentConfig(const AgentConfig& config) {
  if (config.listen.empty() || config.listen.find(':') == std::string::npos) {
    return absl::InvalidArgumentError(absl::StrCat(
        "listen address \"", config.listen, "\" must be HOST:PORT"));
  }
  const bool rest_exposed = config.rest_listen != "off" &&
                            !IsLoopbackListenAddress(config.rest_listen);
  const bool exposed = !IsLoopbackListenAddress(config.listen) || rest_exposed;
  const std::string where = IsLoopbackListenAddress(config.listen)
                                ? config.rest_listen
                                : config.listen;
  if (exposed && !config.insecure) {
    // On a network, a caller must be both private (TLS) and known (client
    // certificates or tokens).
    if (!config.tls.enabled() && config.tokens.empty()) {
      return absl::FailedPreconditionError(absl::StrCat(
          "refusing to listen on ", where,
          ": it is not a loopback address and neither TLS (tls:) nor tokens "
          "(tokens:) are configured, so anyone who can reach it could start "
          "traces and run allowed commands. Configure them, listen on "
          "127.0.0.1, or pass --insecure on a network you trust"));
    }
    if (!config.tls.enabled()) {
      return absl::FailedPreconditionError(absl::StrCat(
          "refusing to listen on ", where,
          " with tokens but without TLS: bearer tokens would cross the lab "
          "network in clear text. Configure tls:, or pass --insecure"));
    }
    if (config.tls.client_ca_file.empty() && config.tokens.empty()) {
      return absl::FailedPreconditionError(absl::StrCat(
          "refusing to listen on ", where,
          " with TLS but neither client certificates (tls.client_ca_file) "
          "nor tokens: every caller would be an anonymous admin. Configure "
          "one of them, or pass --insecure"));
    }
  }
  if (config.tls.cert_file.empty() != config.tls.key_file.empty()) {
    return absl::InvalidArgumentError("tls needs both cert_file and key_file");
  }
  if (!config.tls.client_ca_file.empty() && !config.tls.enabled()) {
    return absl::InvalidArgumentError(
        "tls.client_ca_file (mutual TLS) needs cert_file and key_file too");
  }
  std::set<std::string> token_names;
  for (const TokenSpec& t : config.tokens) {
    LABTRACE_RETURN_IF_ERROR(ValidateName("token name", t.name));
    if (!token_names.insert(t.name).second) {
      return absl::InvalidArgumentError(
          absl::StrCat("token \"", t.name, "\" is defined twice"));
    }
  }
  if (config.data_dir.empty()) {
    return absl::InvalidArgumentError("data_dir is empty");
  }
  if (config.max_sessions < 1) {
    return absl::InvalidArgumentError("max_sessions must be at least 1");
  }
  std::set<std::string> seen;
  for (const ProfileSpec& p : config.profiles) {
    LABTRACE_RETURN_IF_ERROR(ValidateName("profile name", p.name));
    if (!seen.insert(p.name).second) {
      return absl::InvalidArgumentError(
          absl::StrCat("profile \"", p.name, "\" is defined twice"));
    }
    if (p.backend != "wpr" && p.backend != "perf") {
      return absl::InvalidArgumentError(
          absl::StrCat("profile \"", p.name, "\": unknown backend \"",
                       p.backend, "\"; use wpr or perf"));
    }
    if (!p.file_mode && !p.memory_mode) {
      return absl::InvalidArgumentError(
          absl::StrCat("profile \"", p.name, "\" supports no mode"));
    }
    if (p.backend == "wpr" && p.args.empty()) {
      return absl::InvalidArgumentError(absl::StrCat(
          "profile \"", p.name,
          "\": a wpr profile needs `args` (e.g. [GeneralProfile])"));
    }
  }
  return absl::OkStatus();
}

std::string AgentUsage() {
  return R"(labtrace-agent: serves named trace operations on this machine over gRPC.

Usage: labtrace-agent [--config FILE] [flags]
       labtrace-agent service install [flags]   (Windows: install the service)
       labtrace-agent service uninstall         (Windows: stop and remove it)
       labtrace-agent service run [flags]      (what the Windows service runs)

Clients (the `labtrace` controller, grpcurl, CI jobs) start and stop named
traces ("setup_ebpf", "unit_tests"); each stopped trace becomes an artifact
file in the data dir that clients list, fetch (resumable) and delete.
Backends: perf (`perf record -a`, Linux), wpr (Windows Performance Recorder).

Flags (override the config file):
  --config FILE          YAML config (see deploy/agent.example.yaml). On
                         Windows, %ProgramData%\labtrace\agent.yaml is read
                         when --config is not given and that file exists.
  --listen HOST:PORT     gRPC listen address. Default 127.0.0.1:7411.
                         Port 0 picks a free port; see --port-file.
  --rest-listen HOST:PORT REST/JSON mirror address. Default 127.0.0.1:7412;
                         "off" disables it. Port 0 picks a free port.
  --port-file FILE       Once listening, write the gRPC port (line 1) and the
                         REST port (line 2; 0 when off) to FILE.
  --data-dir DIR         Artifacts, journal, temp files. Default
                         /var/lib/labtrace (Linux), %ProgramData%\labtrace.
  --max-sessions N       Concurrent active sessions (1..64). Default 8.
  --max-duration D       Auto-stop after D (artifact kept, marked
                         auto_stopped). Default 4h. Units: s, m, h.
  --wpr-path PATH        wpr executable. Default wpr.exe (from PATH).
  --perf-path PATH       perf executable. Default perf (from PATH).
  --exec-allow PROGRAM   Let clients run PROGRAM under a trace (RunCommand).
                         Repeatable; adds to exec.allow and enables exec.
  --log-level LEVEL      trace, debug, info, warn, error, off. Default info.
  --log-file FILE        Also log to FILE (rotated at 10 MiB, 5 kept). The
                         Windows service logs to <data_dir>\agent.log.
  --insecure             Allow a non-loopback --listen address without TLS or
                         tokens: anyone who reaches the port can start traces,
                         fetch files and run allowed commands. Without it such
                         an address is refused unless tls: or tokens: is set.
  --version              Print the version and exit.
  --help                 Print this help and exit.

Config file keys (all optional):
  listen, rest_listen, data_dir, log_level, log_file
  limits:  max_sessions (8), max_duration (4h), chunk_bytes (1 MiB),
           max_commands (32 RunCommand at once), max_downloads (16
           FetchArtifact streams at once), control_threads (16),
           download_stall_timeout (60s: a download whose client reads
           nothing that long is cancelled), max_threads (8: gRPC
           reflection). Stop-all has threads of its own.
           min_free_bytes (1GiB; 0 off): below this free space on the data
           dir's volume StartTrace is refused and running traces are
           stopped (files kept, marked low_disk). max_session_bytes (0 =
           none): default and largest byte limit of a session (perf
           --max-size; others stopped by the watchdog, marked max_bytes).
           max_lease (24h): longest lease a start may ask for.
           rest_max_connections (256: more are answered 503),
           rest_request_timeout (10s: a request's headers, then its body,
           must arrive within it; slow clients are answered 408 and cut),
           rest_idle_timeout (30s: idle keep-alive connections closed).
           zstd_level (1; -7 to 19): compression of downloads that ask
           for it (gRPC COMPRESSION_ZSTD, REST Accept-Encoding: zstd).
  wpr:     path, skip_pdb_gen (true), start_timeout (60s), stop_timeout (600s),
           cancel_timeout (60s), cancel_unjournaled (true: at start, cancel
           WPR instances labtrace_* that ETW lists but no journal explains)
  perf:    path, stop_timeout (120s), memory_mode_pages (1024)
  tls:     cert_file, key_file (PEM; TLS on), client_ca_file (mutual TLS:
           clients need a certificate from this CA)
  tokens:  list of {name, role: read|control|admin, sha256}: bearer tokens,
           stored as sha256 only (printf %s "$TOKEN" | sha256sum). Roles
           nest; read: info/list/get/fetch, control: start/stop/cancel,
           admin: stop-all/delete/run commands. No tokens: no auth.
  audit_log: file for one line per mutating call, download and refused
           call (default <data_dir>/audit.log; mode 0600). Fail-closed:
           calls that start something are refused if it cannot be written.
  exec:    enabled (false), allow: [programs], max_timeout (1h),
           max_output_bytes (16 MiB). RunCommand runs only allow-listed
           programs (exact argv[0] match), never through a shell.
  profiles: list of {name, backend: perf|wpr, description, args: [...],
           modes: [file, memory]}. Replaces the default catalog.

Default profiles: Linux: cpu (perf -F 999 -g), sched (scheduler tracepoints).
Windows: default (embedded labtrace.wprp), cpu, general (built-in WPR).

The agent serves the standard gRPC health service and server reflection, so
`grpcurl -plaintext 127.0.0.1:7411 list` works without the .proto.
)";
}

absl::StatusOr<AgentCommandLine> ParseAgentCommandLine(
    int argc, const char* const* argv) {
  AgentCommandLine out;
  AgentConfig& c = out.config;
  std::vector<std::pair<std::string, std::string>> flags;
  std::string config_path;
  static const std::set<std::string> kValueFlags = {
      "config",       "listen",     "data-dir",   "max-sessions",
      "max-duration", "wpr-path",   "perf-path",  "log-level",
      "port-file",    "exec-allow", "rest-listen",  "log-file"};
  for (int i = 1; i < argc; ++i) {
    absl::string_view arg = argv[i];
    if (arg == "--help" || arg == "-h") {
      out.print_and_exit = AgentUsage();
      return out;
    }
    if (arg == "--insecure") {
      c.insecure = true;
      continue;
    }
    if (arg == "--version") {
      out.print_and_exit =
          absl::StrCat("labtrace-agent ", LABTRACE_VERSION, "\n");
      return out;
    }
    if (!absl::StartsWith(arg, "--")) {
      return absl::InvalidArgumentError(absl::StrCat(
          "unexpected argument \"", arg, "\"; see labtrace-agent --help"));
    }
    std::string name(arg.substr(2));
    std::string value;
    bool has_value = false;
    if (auto eq = name.find('='); eq != std::string::npos) {
      value = name.substr(eq + 1);
      name = name.substr(0, eq);
      has_value = true;
    }
    if (!kValueFlags.count(name)) {
      return absl::InvalidArgumentError(
          absl::StrCat("unknown flag --", name, "; see labtrace-agent --help"));
    }
    if (!has_value) {
      if (i + 1 >= argc) {
        return absl::InvalidArgumentError(
            absl::StrCat("flag --", name, " needs a value"));
      }
      value = argv[++i];
    }
    if (name == "config") {
      config_path = value;
    } else {
      flags.emplace_back(name, value);
    }
  }
  c.data_dir = DefaultDataDir();
  if (config_path.empty()) {
    std::error_code ec;
    const std::filesystem::path fallback = DefaultConfigPath();
    if (!fallback.empty() && std::filesystem::is_regular_file(fallback, ec)) {
      config_path = PathToUtf8(fallback);
    }
  }
  if (!config_path.empty()) {
    absl::StatusOr<std::string> text = ReadFile(PathFromUtf8(config_path));
    if (!text.ok()) {
      return absl::InvalidArgumentError(
          absl::StrCat("cannot read config: ", text.status().message()));
    }
    LABTRACE_RETURN_IF_ERROR(ApplyAgentConfigYaml(*text, config_path, &c));
    out.config_path = PathFromUtf8(config_path);
  }
  for (const auto& [name, value] : flags) {
    if (name == "listen") {
      c.listen = value;
    } else if (name == "data-dir") {
      c.data_dir = PathFromUtf8(value);
    } else if (name == "max-sessions") {
      if (!absl::SimpleAtoi(value, &c.max_sessions) || c.max_sessions < 1 ||
          c.max_sessions > 64) {
        return absl::InvalidArgumentError(absl::StrCat(
            "--max-sessions \"", value, "\": expected an integer in 1..64"));
      }
    } else if (name == "max-duration") {
      absl::Status s = ParseDurationValue(value, &c.max_duration);
      if (!s.ok()) {
        return absl::InvalidArgumentError(
            absl::StrCat("--max-duration: ", s.message()));
      }
    } else if (name == "wpr-path") {
      c.wpr.path = value;
    } else if (name == "perf-path") {
      c.perf.path = value;
    } else if (name == "log-level") {
      c.log_level = value;
    } else if (name == "log-file") {
      c.log_file = PathFromUtf8(value);
    } else if (name == "port-file") {
      out.port_file = value;
    } else if (name == "rest-listen") {
      c.rest_listen = value;
    } else if (name == "exec-allow") {
      c.exec.enabled = true;
      c.exec.allow.push_back(value);
    }
  }
  if (c.profiles.empty()) c.profiles = DefaultProfiles();
  LABTRACE_RETURN_IF_ERROR(ValidateAgentConfig(c));
  return out;
}

}  // namespace labtrace::agent
