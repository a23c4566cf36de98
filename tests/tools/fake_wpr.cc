/*
 * fake_wpr: a stand-in for the Windows Performance Recorder command-line tool
 * (wpr.exe), used by the tests of labtrace's WPR backend on Linux and, built
 * as fake_wpr.exe, by the Windows agent under wine. What it mimics and where
 * each behaviour was learned is in tests/tools/README.md.
 *
 * Accepted command lines (option names are case-insensitive, like wpr's;
 * -instancename must come last, as wpr's documentation requires):
 *   -start <profile> [-start <profile2> ...] [-filemode] [-recordtempto DIR]
 *          [-instancename NAME]
 *   -stop <out.etl> [description...] [-skipPdbGen] [-compress]
 *          [-instancename NAME]
 *   -cancel [-instancename NAME]
 *   -status [profiles] [collectors] [-instancename NAME]
 *   -profiles | -help | -?
 * Default instance name: WprApp. <profile> is a built-in name (GeneralProfile,
 * CPU, ...) or FILE.wprp!Name; a .wprp file must exist.
 * Every invocation first prints wpr's two-line banner to stdout.
 *
 * State (no background process is used):
 *   FAKE_WPR_STATE_DIR (environment only, required; exit 2 if unset) holds:
 *   instances/<name>/info  one directory per running instance (key=value
 *                     lines: instance, profile (repeated), mode=file|memory,
 *                     start_unix_ms, recordtempto). Creating the directory is
 *                     the atomic "start"; in <name>, characters that are not
 *                     [A-Za-z0-9._-] are %XX-escaped.
 *   calls.log         one line per invocation: argv[1..] joined by single
 *                     spaces (argv[0] is NOT logged).
 *   control.env       optional KEY=VALUE lines ('#' comments allowed), re-read
 *                     on every invocation; they override the environment. An
 *                     empty value means "unset".
 *
 * Behaviour knobs (environment or control.env):
 *   FAKE_WPR_ETL_SOURCE         file copied to the -stop output (needed for
 *                               a successful stop).
 *   FAKE_WPR_MAX_INSTANCES=N    -start fails (0x800705aa) if N are running.
 *   FAKE_WPR_START_DELAY_MS     sleep in -start AFTER the instance exists
 *                               (a killed start leaks the session).
 *   FAKE_WPR_STOP_DELAY_MS      sleep in -stop before the ETL is written
 *                               (merging); progress lines meanwhile.
 *   FAKE_WPR_CANCEL_DELAY_MS    sleep in -cancel before the instance goes.
 *   FAKE_WPR_IGNORE_SIGTERM=1   ignore SIGTERM while sleeping (POSIX).
 *   FAKE_WPR_START_FAIL_HRESULT -start fails with this code (no instance);
 *                               e.g. 0xc5585011 (not elevated).
 *   FAKE_WPR_STOP_FAIL_HRESULT  -stop fails with this code after the delay
 *                               (the instance keeps recording, as after a
 *                               failed merge).
 * Numbers accept decimal or 0x-hex; bad values exit 2.
 *
 * Errors print tab-indented lines to stderr: the message, "Profile Id: ..."
 * for -start, "Error code: 0x%08x", and the message again, like wpr. Real wpr
 * exits with the HRESULT, and so does fake_wpr.exe on Windows. Linux exit
 * statuses are 8 bits, so there the codes are mapped:
 *   0 success
 *   1 any other HRESULT (0xc5600602 bad syntax, 0x80070002 file missing, ...)
 *   2 fake misconfigured (state dir missing, bad knob value, state I/O error)
 *   3 0xc5583001 already running        4 0xc5583000 not running
 *   5 0xc5580701 invalid profile        6 0x800705aa too many sessions
 * "-status" of a non-running instance prints "WPR is not recording", exit 0.
 */

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <chrono>
#include <csignal>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <optional>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "common/console.h"

namespace fs = std::filesystem;

namespace {

constexpr char kDefaultInstance[] = "WprApp";
constexpr uint32_t kNotRunning = 0xc5583000;
constexpr uint32_t kAlreadyRunning = 0xc5583001;
constexpr uint32_t kInvalidProfile = 0xc5580701;
constexpr uint32_t kNoResources = 0x800705aa;
constexpr uint32_t kInvalidSyntax = 0xc5600602;
constexpr uint32_t kFileNotFound = 0x80070002;
constexpr uint32_t kPathNotFound = 0x80070003;
constexpr uint32_t kFail = 0x80004005;
constexpr char kUsage[] =
    "Usage: wpr -start <profile> [-filemode] [-recordtempto DIR] "
    "[-instancename N] | -stop <file.etl> [description] [-skipPdbGen] "
    "[-instancename N] | -cancel | -status | -profiles";

// wpr's words for the HRESULTs it reports (tests/tools/README.md has the
// sources).
std::string MessageFor(uint32_t hr) {
  static const std::map<uint32_t, std::string> kText = {
      {kNotRunning, "There are no trace profiles running."},
      {kAlreadyRunning, "The profiles are already running."},
      {kInvalidProfile, "The schema for the profile file is not valid."},
      {kNoResources,
       "Insufficient system resources exist to complete the requested "
       "service."},
      {kInvalidSyntax, "Invalid command syntax."},
      {0xc5585011, "Failed to enable the policy to profile system performance."},
      {0xc5580612, "An Event session cannot be started without any providers."},
      {0x80010106, "Cannot change thread mode after it is set."},
      {0x80071069,
       "The instance name passed was not recognized as valid by a WMI data "
       "provider."},
      {0x80070070, "There is not enough space on the disk."},
      {kFileNotFound, "The system cannot find the file specified."},
      {kPathNotFound, "The system cannot find the path specified."},
      {0x80070005, "Access is denied."},
  };
  auto it = kText.find(hr);
  return it == kText.end() ? "The operation failed." : it->second;
}

// Paths arrive as UTF-8 (environment, argv).
fs::path U8(const std::string& s) {
  return fs::path(std::u8string(s.begin(), s.end()));
}

// An environment variable as UTF-8 ("" if unset): on Windows from the wide
// environment, so paths outside the ANSI code page survive.
std::string EnvUtf8(const std::string& name) {
#ifdef _WIN32
  const wchar_t* v = _wgetenv(fs::path(U8(name)).c_str());
  if (v == nullptr) return "";
  const std::u8string u = fs::path(v).u8string();
  return std::string(u.begin(), u.end());
#else
  const char* v = std::getenv(name.c_str());
  return v == nullptr ? "" : v;
#endif
}

fs::path g_state_dir;
std::map<std::string, std::string> g_control;

[[noreturn]] void Fatal(const std::string& msg) {
  std::fprintf(stderr, "fake_wpr: %s\n", msg.c_str());
  std::exit(2);
}

[[noreturn]] void ExitWithHresult(uint32_t hr) {
  std::fflush(stdout);
  std::fflush(stderr);
#ifdef _WIN32
  std::exit(static_cast<int>(hr));  // The process exit code is the HRESULT.
#else
  const std::map<uint32_t, int> codes = {{kAlreadyRunning, 3},
                                         {kNotRunning, 4},
                                         {kInvalidProfile, 5},
                                         {kNoResources, 6}};
  auto it = codes.find(hr);
  std::exit(it == codes.end() ? 1 : it->second);
#endif
}

[[noreturn]] void Fail(uint32_t hr, const std::string& profile_ids = "",
                       const std::string& detail = "") {
  std::fflush(stdout);
  const std::string msg = MessageFor(hr);
  std::fprintf(stderr, "\n\t%s\n", msg.c_str());
  if (!detail.empty()) std::fprintf(stderr, "\t%s\n", detail.c_str());
  if (!profile_ids.empty()) {
    std::fprintf(stderr, "\tProfile Id: %s\n", profile_ids.c_str());
  }
  std::fprintf(stderr, "\tError code: 0x%08x\n\t%s\n", hr, msg.c_str());
  ExitWithHresult(hr);
}

void Say(const std::string& line) {
  std::printf("%s\n", line.c_str());
  std::fflush(stdout);
}

std::string Lower(std::string s) {
  for (char& c : s) c = static_cast<char>(std::tolower((unsigned char)c));
  return s;
}

std::string Trim(const std::string& s) {
  size_t b = s.find_first_not_of(" \t\r\n");
  if (b == std::string::npos) return "";
  return s.substr(b, s.find_last_not_of(" \t\r\n") - b + 1);
}

void LoadControlFile() {
  std::ifstream in(g_state_dir / "control.env");
  std::string line;
  while (std::getline(in, line)) {
    line = Trim(line);
    size_t eq = line.find('=');
    if (line.empty() || line[0] == '#' || eq == std::string::npos) continue;
    g_control[Trim(line.substr(0, eq))] = Trim(line.substr(eq + 1));
  }
}

std::optional<std::string> Setting(const std::string& key) {
  auto it = g_control.find(key);
  std::string v = it != g_control.end() ? it->second : EnvUtf8(key);
  return v.empty() ? std::nullopt : std::optional<std::string>(v);
}

uint64_t NumberSetting(const std::string& key, uint64_t max) {
  std::optional<std::string> v = Setting(key);
  if (!v) return 0;
  errno = 0;
  char* end = nullptr;
  unsigned long long n = std::strtoull(v->c_str(), &end, 0);
  if (errno != 0 || *end != '\0' || (*v)[0] == '-' || n > max) {
    Fatal("bad value for " + key + ": '" + *v + "'");
  }
  return n;
}

void MaybeSleep(const std::string& key, bool progress = false) {
  uint64_t ms = NumberSetting(key, 0xffffffff);
  if (ms == 0) return;
#ifndef _WIN32
  bool ignore = Setting("FAKE_WPR_IGNORE_SIGTERM").value_or("0") == "1";
  if (ignore) std::signal(SIGTERM, SIG_IGN);
#endif
  const auto until =
      std::chrono::steady_clock::now() + std::chrono::milliseconds(ms);
  int percent = 0;
  while (std::chrono::steady_clock::now() < until) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        until - std::chrono::steady_clock::now());
    std::this_thread::sleep_for(
        std::min(left, std::chrono::milliseconds(1000)));
    if (progress && percent < 90) {
      percent += 10;
      Say("  " + std::to_string(percent) + "%  [" +
          std::string(static_cast<size_t>(percent * 6 / 10), '>') +
          std::string(static_cast<size_t>(60 - percent * 6 / 10), ' ') + "]");
    }
  }
#ifndef _WIN32
  if (ignore) std::signal(SIGTERM, SIG_DFL);
#endif
}

void LogCall(int argc, char** argv) {
  std::string line;
  for (int i = 1; i < argc; ++i) {
    if (i > 1) line += ' ';
    line += argv[i];
  }
  line += '\n';
  // One write of the whole line in append mode (the stream flushes once, at
  // close): concurrent invocations append whole lines.
  std::ofstream f(g_state_dir / "calls.log", std::ios::app | std::ios::binary);
  if (!(f << line).flush()) {
    Fatal("cannot append to calls.log: " + std::string(std::strerror(errno)));
  }
}

fs::path InstancesDir() { return g_state_dir / "instances"; }

fs::path InstanceDir(const std::string& name) {
  std::string out;
  for (unsigned char c : name) {
    if (std::isalnum(c) || c == '.' || c == '_' || c == '-') {
      out += static_cast<char>(c);
    } else {
      char buf[4];
      std::snprintf(buf, sizeof(buf), "%%%02X", c);
      out += buf;
    }
  }
  if (out == "." || out == "..") out = "%2E" + out.substr(1);
  return InstancesDir() / out;
}

// Returns the instance's key/value lines, or nullopt if not running.
std::optional<std::multimap<std::string, std::string>> ReadInstance(
    const std::string& name) {
  std::ifstream in(InstanceDir(name) / "info");
  if (!in) return std::nullopt;
  std::multimap<std::string, std::string> kv;
  std::string line;
  while (std::getline(in, line)) {
    size_t eq = line.find('=');
    if (eq != std::string::npos)
      kv.emplace(line.substr(0, eq), line.substr(eq + 1));
  }
  return kv;
}

void RemoveInstance(const std::string& name) {
  std::error_code ec;
  fs::remove_all(InstanceDir(name), ec);
}

int CountInstances() {
  std::error_code ec;
  int n = 0;
  for (auto it = fs::directory_iterator(InstancesDir(), ec);
       !ec && it != fs::directory_iterator(); it.increment(ec)) {
    n += it->path().filename().string().rfind(".lock", 0) != 0;
  }
  if (ec) Fatal("cannot list " + InstancesDir().string());
  return n;
}

// A lock shared by every fake_wpr process: a directory that exists while
// held (mkdir is atomic on every OS). Held only for a count-and-create.
class StateLock {
 public:
  StateLock() : path_(InstancesDir() / ".lock") {
    for (int i = 0; i < 2000; ++i) {
      std::error_code ec;
      if (fs::create_directory(path_, ec)) return;
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
    Fatal("cannot take " + path_.string() + " (stale? remove it)");
  }
  ~StateLock() {
    std::error_code ec;
    fs::remove(path_, ec);
  }

 private:
  fs::path path_;
};

int64_t NowMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

struct Args {
  std::string action;  // start, stop, cancel, status, profiles, help
  std::vector<std::string> profiles;
  std::string out_path;
  std::vector<std::string> description;
  std::vector<std::string> status_details;  // profiles, collectors
  std::optional<std::string> instance;
  std::optional<std::string> record_temp_to;
  bool file_mode = false;
  bool skip_pdb_gen = false;
};

[[noreturn]] void Usage(const std::string& why) {
  std::fflush(stdout);
  Say(kUsage);
  Fail(kInvalidSyntax, "", why);
}

Args Parse(int argc, char** argv) {
  Args a;
  auto set_action = [&a](const std::string& act) {
    if (!a.action.empty() && a.action != act) Usage("conflicting commands");
    a.action = act;
  };
  auto value = [&](int& i, const std::string& opt) {
    if (i + 1 >= argc || argv[i + 1][0] == '-' || argv[i + 1][0] == '\0') {
      Usage(opt + " requires an argument");
    }
    return std::string(argv[++i]);
  };
  for (int i = 1; i < argc; ++i) {
    std::string opt = Lower(argv[i]);
    if (opt == "-start") {
      set_action("start");
      a.profiles.push_back(value(i, opt));
    } else if (opt == "-stop") {
      if (a.action == "stop") Usage("-stop given twice");
      set_action("stop");
      a.out_path = value(i, opt);
      while (i + 1 < argc && argv[i + 1][0] != '-')
        a.description.push_back(argv[++i]);
    } else if (opt == "-status") {
      set_action("status");
      while (i + 1 < argc && argv[i + 1][0] != '-') {
        std::string d = Lower(argv[++i]);
        if (d != "profiles" && d != "collectors" && d != "details") {
          Usage("Invalid option: " + d);
        }
        a.status_details.push_back(d);
      }
    } else if (opt == "-cancel" || opt == "-profiles") {
      set_action(opt.substr(1));
    } else if (opt == "-help" || opt == "-?") {
      set_action("help");
    } else if (opt == "-instancename") {
      if (a.instance) Usage("-instancename given twice");
      a.instance = value(i, opt);
      if (i != argc - 1) Usage("-instancename must be the last parameter");
    } else if (opt == "-recordtempto") {
      if (a.record_temp_to) Usage("-recordtempto given twice");
      a.record_temp_to = value(i, opt);
    } else if (opt == "-filemode") {
      a.file_mode = true;
    } else if (opt == "-skippdbgen") {
      a.skip_pdb_gen = true;
    } else if (opt == "-compress") {
      if (a.action != "stop") Usage("-compress needs -stop");
    } else {
      Usage("Invalid option: " + std::string(argv[i]));
    }
  }
  if (a.action.empty()) Usage("no command given");
  if ((a.file_mode || a.record_temp_to) && a.action != "start") {
    Usage("-filemode/-recordtempto are only valid with -start");
  }
  if (a.skip_pdb_gen && a.action != "stop") Usage("-skipPdbGen needs -stop");
  if (a.instance && (a.action == "profiles" || a.action == "help")) {
    Usage("-instancename is not valid here");
  }
  return a;
}

// "GeneralProfile.Verbose.File, Labtrace.Verbose.File": what wpr prints as
// "Profile Id" for the profiles of a -start.
std::string ProfileIds(const Args& a) {
  std::string out;
  for (const std::string& p : a.profiles) {
    std::string name = p;
    if (size_t bang = p.rfind('!'); bang != std::string::npos) {
      name = p.substr(bang + 1);
    }
    if (name.find('.') == std::string::npos) name += ".Verbose";
    out += (out.empty() ? "" : ", ") + name +
           (a.file_mode ? ".File" : ".Memory");
  }
  return out;
}

void Start(const Args& a, const std::string& name) {
  for (const std::string& p : a.profiles) {
    const std::string lower = Lower(p);
    const size_t bang = p.rfind('!');
    const std::string file = bang == std::string::npos ? p : p.substr(0, bang);
    if (lower.find("invalid") != std::string::npos) {
      Fail(kInvalidProfile, ProfileIds(a));
    }
    std::error_code ec;
    if (Lower(file).size() > 5 &&
        Lower(file).compare(Lower(file).size() - 5, 5, ".wprp") == 0 &&
        !fs::is_regular_file(U8(file), ec)) {
      Fail(kFileNotFound, ProfileIds(a), file);
    }
  }
  uint64_t hr = NumberSetting("FAKE_WPR_START_FAIL_HRESULT", 0xffffffff);
  if (hr != 0) Fail(static_cast<uint32_t>(hr), ProfileIds(a));
  std::ostringstream body;
  body << "instance=" << name << "\n";
  for (const std::string& p : a.profiles) body << "profile=" << p << "\n";
  body << "mode=" << (a.file_mode ? "file" : "memory") << "\n"
       << "start_unix_ms=" << NowMs() << "\n"
       << "recordtempto=" << a.record_temp_to.value_or("") << "\n";
  {
    StateLock lock;
    std::error_code ec;
    const bool exists = fs::exists(InstanceDir(name), ec);
    uint64_t max = NumberSetting("FAKE_WPR_MAX_INSTANCES", 0xffffffff);
    if (!exists && Setting("FAKE_WPR_MAX_INSTANCES") &&
        static_cast<uint64_t>(CountInstances()) >= max) {
      Fail(kNoResources, ProfileIds(a));
    }
    if (exists || !fs::create_directory(InstanceDir(name), ec)) {
      if (exists || !ec) Fail(kAlreadyRunning, ProfileIds(a));
      Fatal("cannot create " + InstanceDir(name).string() + ": " +
            ec.message());
    }
    if (!(std::ofstream(InstanceDir(name) / "info") << body.str()).flush()) {
      Fatal("cannot write the instance file");
    }
  }
  MaybeSleep("FAKE_WPR_START_DELAY_MS");
}

void Stop(const Args& a, const std::string& name) {
  if (!ReadInstance(name)) Fail(kNotRunning);
  Say("Press Ctrl+C to cancel the stop operation.");
  Say("  0%  [" + std::string(60, ' ') + "]");
  MaybeSleep("FAKE_WPR_STOP_DELAY_MS", /*progress=*/true);
  uint64_t hr = NumberSetting("FAKE_WPR_STOP_FAIL_HRESULT", 0xffffffff);
  if (hr != 0) Fail(static_cast<uint32_t>(hr));
  const fs::path out = U8(a.out_path);
  std::error_code ec;
  const fs::path dir = out.has_parent_path() ? out.parent_path() : ".";
  if (!fs::is_directory(dir, ec)) Fail(kPathNotFound, "", a.out_path);
  std::optional<std::string> src_path = Setting("FAKE_WPR_ETL_SOURCE");
  if (!src_path || !fs::is_regular_file(U8(*src_path), ec)) {
    Fail(kFileNotFound, "", "(FAKE_WPR_ETL_SOURCE)");
  }
  fs::path tmp = out;
  tmp += ".fakewpr.tmp";
  fs::copy_file(U8(*src_path), tmp,
                fs::copy_options::overwrite_existing, ec);
  if (!ec) fs::rename(tmp, out, ec);
  if (ec) {
    std::error_code ignored;
    fs::remove(tmp, ignored);
    Fail(kFail, "", "The trace could not be saved: " + ec.message());
  }
  RemoveInstance(name);
  Say("  100%  [" + std::string(60, '>') + "]");
  Say("The trace was successfully saved.");
}

void Cancel(const std::string& name) {
  if (!ReadInstance(name)) Fail(kNotRunning);
  MaybeSleep("FAKE_WPR_CANCEL_DELAY_MS");
  RemoveInstance(name);
}

void Status(const Args& a, const std::string& name) {
  auto kv = ReadInstance(name);
  if (!kv) {
    Say("WPR is not recording");
    return;
  }
  auto get = [&kv](const std::string& k) {
    auto it = kv->find(k);
    return it == kv->end() ? std::string() : it->second;
  };
  long long secs = (NowMs() - std::atoll(get("start_unix_ms").c_str())) / 1000;
  secs = std::max(0LL, secs);
  char hms[64];
  std::snprintf(hms, sizeof(hms), "%02lld:%02lld:%02lld", secs / 3600,
                secs / 60 % 60, secs % 60);
  Say("WPR recording is in progress...\n");
  Say(std::string("Time since start        : ") + hms);
  Say("Dropped event           : 0");
  Say(std::string("Logging mode            : ") +
      (get("mode") == "file" ? "File" : "Memory"));
  if (!get("recordtempto").empty()) {
    Say("Temp Folder             : " + get("recordtempto"));
  }
  if (std::find(a.status_details.begin(), a.status_details.end(),
                "profiles") != a.status_details.end()) {
    std::string profiles;
    for (auto [it, end] = kv->equal_range("profile"); it != end; ++it) {
      profiles += (profiles.empty() ? "" : ", ") + it->second;
    }
    Say("\nRecording system activity using the following set of profiles:\n");
    Say("Profile                 : " + profiles);
  }
}

}  // namespace

int main(int argc_ansi, char** argv_ansi) {
  // Like wpr.exe, a Unicode program: on Windows the arguments come from the
  // wide command line (argv is in the ANSI code page).
  const std::vector<std::string> args =
      labtrace::console::Utf8Arguments(argc_ansi, argv_ansi);
  std::vector<char*> argv_utf8;
  for (const std::string& a : args) argv_utf8.push_back(const_cast<char*>(a.c_str()));
  argv_utf8.push_back(nullptr);
  const int argc = static_cast<int>(args.size());
  char** argv = argv_utf8.data();
  const std::string state = EnvUtf8("FAKE_WPR_STATE_DIR");
  if (state.empty()) {
    std::fprintf(stderr, "fake_wpr: FAKE_WPR_STATE_DIR is not set\n");
    return 2;
  }
  g_state_dir = U8(state);
  std::error_code ec;
  fs::create_directories(InstancesDir(), ec);
  if (ec) Fatal("cannot create " + InstancesDir().string() + ": " + ec.message());
  LogCall(argc, argv);
  LoadControlFile();
  // Validate every numeric knob up front so misconfiguration always shows.
  for (const char* k :
       {"FAKE_WPR_START_DELAY_MS", "FAKE_WPR_STOP_DELAY_MS",
        "FAKE_WPR_CANCEL_DELAY_MS", "FAKE_WPR_MAX_INSTANCES",
        "FAKE_WPR_START_FAIL_HRESULT", "FAKE_WPR_STOP_FAIL_HRESULT"}) {
    NumberSetting(k, 0xffffffff);
  }
  Say("Microsoft Windows Performance Recorder Version 10.0.26100 "
      "(CoreSystem; labtrace fake_wpr)");
  Say("Copyright (c) 2024 Microsoft Corporation. All rights reserved.\n");
  Args a = Parse(argc, argv);
  std::string name = a.instance.value_or(kDefaultInstance);
  if (a.action == "start") {
    Start(a, name);
  } else if (a.action == "stop") {
    Stop(a, name);
  } else if (a.action == "cancel") {
    Cancel(name);
  } else if (a.action == "status") {
    Status(a, name);
  } else if (a.action == "profiles") {
    Say("\tGeneralProfile\n\tCPU\n\tDiskIO\n\tFileIO\n\tHeap\n\tNetwork");
  } else {
    Say(kUsage);
  }
  return 0;
}
