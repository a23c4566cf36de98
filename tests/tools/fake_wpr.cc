/*
 * fake_wpr: a Linux stand-in for the Windows Performance Recorder command-line
 * tool (wpr.exe), used by tests of the labtrace WPR backend.
 *
 * Accepted command lines (option names are case-insensitive, like wpr):
 *   -start <profile> [-start <profile2> ...] [-filemode] [-instancename NAME]
 *          [-recordtempto DIR]
 *   -stop <out.etl> [description...] [-instancename NAME] [-skipPdbGen]
 *   -cancel [-instancename NAME]
 *   -status [-instancename NAME]
 *   -profiles | -help | -?
 * Default instance name: "WPR_initiated_WprApp_WPR System Collector".
 * Like wpr, every invocation first prints a two-line banner to stdout.
 *
 * State (no background process is used):
 *   FAKE_WPR_STATE_DIR (env only, required; exit 2 if unset) holds:
 *   instances/<name>  one file per running instance (key=value lines:
 *                     instance, profile (repeated), mode=file|memory,
 *                     start_unix_ms, recordtempto, starter_pid). In <name>
 *                     '/', '%', control chars and a leading '.' are
 *                     %XX-escaped. Written via temp file + link() under an
 *                     fcntl lock, so concurrent starts are race-free.
 *   calls.log         one line per invocation: argv[1..] joined by single
 *                     spaces (argv[0] is NOT logged), appended with O_APPEND
 *                     and a single write().
 *   control.env       optional KEY=VALUE lines ('#' comments allowed), re-read
 *                     on every invocation; they override the environment. An
 *                     empty value means "unset".
 *
 * Behaviour knobs (environment or control.env):
 *   FAKE_WPR_ETL_SOURCE         file copied to the -stop output (needed for
 *                               a successful stop).
 *   FAKE_WPR_MAX_INSTANCES=N    -start fails (0x800705aa) if N are running.
 *   FAKE_WPR_START_DELAY_MS     sleep in -start AFTER the instance file is
 *                               created (a killed start leaks the session).
 *   FAKE_WPR_STOP_DELAY_MS      sleep in -stop before the ETL is written.
 *   FAKE_WPR_CANCEL_DELAY_MS    sleep in -cancel before the instance goes.
 *   FAKE_WPR_IGNORE_SIGTERM=1   ignore SIGTERM while sleeping.
 *   FAKE_WPR_START_FAIL_HRESULT -start fails with this code (no instance).
 *   FAKE_WPR_STOP_FAIL_HRESULT  -stop fails with this code after the delay,
 *                               "The trace could not be saved." (kept).
 * Numbers accept decimal or 0x-hex; bad values exit 2.
 *
 * Errors print a message and then "Error code: 0x%08x" to stderr. Real wpr
 * exits with the HRESULT; Linux exit statuses are 8 bits, so we map:
 *   0 success
 *   1 generic: 0x80070057 (bad arguments), 0x80070002 (ETL source missing),
 *     0x80070003 (output directory missing), any other HRESULT
 *   2 fake misconfigured (state dir missing, bad knob value, state I/O error)
 *   3 0xc5583001 already running        4 0xc5583000 not running
 *   5 0xc5580701 invalid profile        6 0x800705aa too many instances
 * "-status" of a non-running instance prints "WPR is not recording", exit 0.
 */

#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <map>
#include <optional>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

namespace {

constexpr char kDefaultInstance[] = "WPR_initiated_WprApp_WPR System Collector";
constexpr uint32_t kNotRunning = 0xc5583000;
constexpr uint32_t kAlreadyRunning = 0xc5583001;
constexpr uint32_t kInvalidProfile = 0xc5580701;
constexpr uint32_t kNoResources = 0x800705aa;
constexpr uint32_t kInvalidArg = 0x80070057;
constexpr uint32_t kFileNotFound = 0x80070002;
constexpr uint32_t kPathNotFound = 0x80070003;
constexpr uint32_t kFail = 0x80004005;
constexpr char kUsage[] =
    "Usage: wpr -start <profile> [-filemode] [-instancename N] [-recordtempto "
    "DIR] | -stop <file.etl> [description] [-skipPdbGen] | -cancel | -status "
    "| -profiles";

std::string g_state_dir;
std::map<std::string, std::string> g_control;

[[noreturn]] void Fatal(const std::string& msg) {
  std::fprintf(stderr, "fake_wpr: %s\n", msg.c_str());
  std::exit(2);
}

[[noreturn]] void Fail(const std::string& msg, uint32_t hr) {
  std::fflush(stdout);
  std::fprintf(stderr, "%s\nError code: 0x%08x\n", msg.c_str(), hr);
  const std::map<uint32_t, int> codes = {{kAlreadyRunning, 3},
                                         {kNotRunning, 4},
                                         {kInvalidProfile, 5},
                                         {kNoResources, 6}};
  auto it = codes.find(hr);
  std::exit(it == codes.end() ? 1 : it->second);
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
  std::ifstream in(g_state_dir + "/control.env");
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
  const char* env = std::getenv(key.c_str());
  std::string v = it != g_control.end() ? it->second : env ? env : "";
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

void MaybeSleep(const std::string& key) {
  uint64_t ms = NumberSetting(key, 0xffffffff);
  if (ms == 0) return;
  bool ignore = Setting("FAKE_WPR_IGNORE_SIGTERM").value_or("0") == "1";
  if (ignore) signal(SIGTERM, SIG_IGN);
  std::this_thread::sleep_for(std::chrono::milliseconds(ms));
  if (ignore) signal(SIGTERM, SIG_DFL);
}

void LogCall(int argc, char** argv) {
  std::string line;
  for (int i = 1; i < argc; ++i)
    line += (i > 1 ? " " : "") + std::string(argv[i]);
  line += '\n';
  int fd = open((g_state_dir + "/calls.log").c_str(),
                O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  if (fd < 0 || write(fd, line.data(), line.size()) != (ssize_t)line.size()) {
    Fatal("cannot append to calls.log: " + std::string(std::strerror(errno)));
  }
  close(fd);
}

std::string InstancesDir() { return g_state_dir + "/instances"; }

std::string InstancePath(const std::string& name) {
  std::string out;
  for (size_t i = 0; i < name.size(); ++i) {
    unsigned char c = static_cast<unsigned char>(name[i]);
    if (c == '/' || c == '%' || c < 0x20 || c == 0x7f || (i == 0 && c == '.')) {
      char buf[4];
      std::snprintf(buf, sizeof(buf), "%%%02X", c);
      out += buf;
    } else {
      out += static_cast<char>(c);
    }
  }
  return InstancesDir() + "/" + out;
}

// Returns the instance file's key/value lines, or nullopt if not running.
std::optional<std::multimap<std::string, std::string>> ReadInstance(
    const std::string& name) {
  std::ifstream in(InstancePath(name));
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

int CountInstances() {
  DIR* d = opendir(InstancesDir().c_str());
  if (d == nullptr) Fatal("cannot list " + InstancesDir());
  int n = 0;
  while (dirent* e = readdir(d)) n += (e->d_name[0] != '.');
  closedir(d);
  return n;
}

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
  std::optional<std::string> instance;
  std::optional<std::string> record_temp_to;
  bool file_mode = false;
  bool skip_pdb_gen = false;
};

[[noreturn]] void Usage(const std::string& why) {
  Fail("Invalid command syntax: " + why + "\n" + kUsage, kInvalidArg);
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
    } else if (opt == "-cancel" || opt == "-status" || opt == "-profiles") {
      set_action(opt.substr(1));
    } else if (opt == "-help" || opt == "-?") {
      set_action("help");
    } else if (opt == "-instancename") {
      if (a.instance) Usage("-instancename given twice");
      a.instance = value(i, opt);
    } else if (opt == "-recordtempto") {
      if (a.record_temp_to) Usage("-recordtempto given twice");
      a.record_temp_to = value(i, opt);
    } else if (opt == "-filemode") {
      a.file_mode = true;
    } else if (opt == "-skippdbgen") {
      a.skip_pdb_gen = true;
    } else {
      Usage("unknown argument '" + std::string(argv[i]) + "'");
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

void Start(const Args& a, const std::string& name) {
  for (const std::string& p : a.profiles) {
    if (Lower(p).find("invalid") != std::string::npos) {
      Fail("The schema for the profile file is not valid.", kInvalidProfile);
    }
  }
  uint64_t hr = NumberSetting("FAKE_WPR_START_FAIL_HRESULT", 0xffffffff);
  if (hr != 0) {
    Fail("The trace profiles could not be started.", static_cast<uint32_t>(hr));
  }
  std::ostringstream body;
  body << "instance=" << name << "\n";
  for (const std::string& p : a.profiles) body << "profile=" << p << "\n";
  body << "mode=" << (a.file_mode ? "file" : "memory") << "\n"
       << "start_unix_ms=" << NowMs() << "\n"
       << "recordtempto=" << a.record_temp_to.value_or("") << "\n"
       << "starter_pid=" << getpid() << "\n";
  std::string tmp = InstancesDir() + "/.tmp." + std::to_string(getpid());
  if (!(std::ofstream(tmp) << body.str()).flush()) Fatal("cannot write " + tmp);
  // Short global lock so the instance count check and creation are atomic.
  int lock_fd = open((g_state_dir + "/instances.lock").c_str(),
                     O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  struct flock fl = {};
  fl.l_type = F_WRLCK;
  fl.l_whence = SEEK_SET;
  int rc = -1;
  while (lock_fd >= 0 && (rc = fcntl(lock_fd, F_SETLKW, &fl)) != 0 &&
         errno == EINTR) {
  }
  if (rc != 0) Fatal("cannot lock instances.lock");
  uint64_t max = NumberSetting("FAKE_WPR_MAX_INSTANCES", 0xffffffff);
  bool exists = access(InstancePath(name).c_str(), F_OK) == 0;
  if (!exists && Setting("FAKE_WPR_MAX_INSTANCES") &&
      static_cast<uint64_t>(CountInstances()) >= max) {
    unlink(tmp.c_str());
    Fail(
        "Insufficient system resources exist to complete the requested "
        "service.",
        kNoResources);
  }
  if (exists || link(tmp.c_str(), InstancePath(name).c_str()) != 0) {
    int err = errno;
    unlink(tmp.c_str());
    if (exists || err == EEXIST) {
      Fail("The event collector was already running.", kAlreadyRunning);
    }
    Fatal("cannot create instance file: " + std::string(std::strerror(err)));
  }
  unlink(tmp.c_str());
  close(lock_fd);  // Releases the lock.
  MaybeSleep("FAKE_WPR_START_DELAY_MS");
  Say("");
}

void Stop(const Args& a, const std::string& name) {
  if (!ReadInstance(name)) {
    Fail("There are no trace profiles running.", kNotRunning);
  }
  Say("Stopping trace profiles and merging ETL files...");
  MaybeSleep("FAKE_WPR_STOP_DELAY_MS");
  uint64_t hr = NumberSetting("FAKE_WPR_STOP_FAIL_HRESULT", 0xffffffff);
  if (hr != 0) Fail("The trace could not be saved.", static_cast<uint32_t>(hr));
  size_t slash = a.out_path.rfind('/');
  std::string dir = slash == std::string::npos ? "."
                    : slash == 0               ? "/"
                                               : a.out_path.substr(0, slash);
  struct stat st;
  if (stat(dir.c_str(), &st) != 0 || !S_ISDIR(st.st_mode)) {
    Fail("The system cannot find the path specified.", kPathNotFound);
  }
  std::optional<std::string> src_path = Setting("FAKE_WPR_ETL_SOURCE");
  std::ifstream in(src_path.value_or(""), std::ios::binary);
  if (!src_path || stat(src_path->c_str(), &st) != 0 || !S_ISREG(st.st_mode) ||
      !in) {
    Fail("The system cannot find the file specified. (FAKE_WPR_ETL_SOURCE)",
         kFileNotFound);
  }
  std::string tmp = a.out_path + ".fakewpr.tmp";
  bool ok;
  {
    std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
    ok = out && (in.peek() == EOF || out << in.rdbuf()) && out.flush();
  }
  if (!ok || rename(tmp.c_str(), a.out_path.c_str()) != 0) {
    unlink(tmp.c_str());
    Fail("The trace could not be saved.", kFail);
  }
  unlink(InstancePath(name).c_str());
  Say("The trace was successfully saved.");
}

void Cancel(const std::string& name) {
  if (!ReadInstance(name)) {
    Fail("There are no trace profiles running.", kNotRunning);
  }
  MaybeSleep("FAKE_WPR_CANCEL_DELAY_MS");
  unlink(InstancePath(name).c_str());
  Say("The trace was cancelled.");
}

void Status(const std::string& name) {
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
  std::string profiles;
  for (auto [it, end] = kv->equal_range("profile"); it != end; ++it) {
    profiles += (profiles.empty() ? "" : ", ") + it->second;
  }
  char hms[64];
  std::snprintf(hms, sizeof(hms), "%02lld:%02lld:%02lld", secs / 3600,
                secs / 60 % 60, secs % 60);
  Say("WPR is recording:\nInstance name           : " + name +
      "\nTime since start        : " + hms + "\nElapsed seconds         : " +
      std::to_string(secs) + "\nLogging mode            : " +
      (get("mode") == "file" ? "File" : "Memory") +
      "\nProfile(s) enabled      : " + profiles);
}

}  // namespace

int main(int argc, char** argv) {
  const char* state = std::getenv("FAKE_WPR_STATE_DIR");
  if (state == nullptr || *state == '\0') {
    std::fprintf(stderr, "fake_wpr: FAKE_WPR_STATE_DIR is not set\n");
    return 2;
  }
  g_state_dir = state;
  for (const std::string& dir : {g_state_dir, InstancesDir()}) {
    if (mkdir(dir.c_str(), 0755) != 0 && errno != EEXIST) {
      Fatal("cannot create " + dir);
    }
  }
  LogCall(argc, argv);
  LoadControlFile();
  // Validate every numeric knob up front so misconfiguration always shows.
  for (const char* k :
       {"FAKE_WPR_START_DELAY_MS", "FAKE_WPR_STOP_DELAY_MS",
        "FAKE_WPR_CANCEL_DELAY_MS", "FAKE_WPR_MAX_INSTANCES",
        "FAKE_WPR_START_FAIL_HRESULT", "FAKE_WPR_STOP_FAIL_HRESULT"}) {
    NumberSetting(k, 0xffffffff);
  }
  Say("Microsoft Windows Performance Recorder Version 10.0.0 (fake_wpr)");
  Say("Copyright (c) Microsoft Corporation. All rights reserved.\n");
  Args a = Parse(argc, argv);
  std::string name = a.instance.value_or(kDefaultInstance);
  if (a.action == "start") {
    Start(a, name);
  } else if (a.action == "stop") {
    Stop(a, name);
  } else if (a.action == "cancel") {
    Cancel(name);
  } else if (a.action == "status") {
    Status(name);
  } else if (a.action == "profiles") {
    Say("\tGeneralProfile\n\tCPU\n\tDiskIO\n\tFileIO\n\tHeap\n\tNetwork");
  } else {
    Say(kUsage);
  }
  return 0;
}
