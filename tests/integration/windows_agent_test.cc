// The Windows agent end to end: labtrace-agent.exe from the mingw-w64 cross
// build (deploy/windows/cross_build.sh) runs under wine on a loopback port,
// with fake_wpr.exe as its wpr and a data dir whose path has spaces and
// non-ASCII characters. The Linux `labtrace` controller drives it through a
// lab plan whose steps run cmd.exe on the agent; curl talks to its REST
// mirror. Skipped, with the reason, without wine or the cross build.

#include <cstdlib>
#include <fstream>
#include <map>
#include <set>
#include <thread>

#include "common/file_util.h"
#include "common/subprocess.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "tests/testing/test_util.h"

namespace labtrace {
namespace {

using nlohmann::json;
using ::testing::HasSubstr;

const std::filesystem::path kMingw = LABTRACE_MINGW_BUILD_DIR;

std::string Wine() {
  for (const char* c : {"wine64", "/usr/lib/wine/wine64", "wine"}) {
    std::string p = subprocess::FindProgram(c);
    if (!p.empty()) return p;
  }
  return "";
}

// The wine (Windows) spelling of a Linux path: Z: is mapped to /.
std::string WinPath(const std::filesystem::path& p) {
  std::string s = "Z:" + PathToUtf8(std::filesystem::absolute(p));
  for (char& c : s) {
    if (c == '/') c = '\\';
  }
  return s;
}

std::string ShellQuote(const std::string& s) {
  std::string out = "'";
  for (char c : s) out += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return out + "'";
}

std::vector<std::string> WineEnv() {
  return {"WINEPREFIX=" + std::string(LABTRACE_WINE_PREFIX), "WINEDEBUG=-all",
          "WINEARCH=win64", "WINEDLLOVERRIDES=mscoree,mshtml=", "DISPLAY="};
}

struct CliResult {
  int exit_code = -1;
  std::string out;
  std::string err;
};

// A labtrace-agent.exe under wine.
class WineAgent {
 public:
  WineAgent(std::filesystem::path root, std::string config_yaml,
            std::vector<std::string> env)
      : root_(std::move(root)),
        config_(std::move(config_yaml)),
        env_(std::move(env)) {}
  ~WineAgent() { Stop(); }

  bool Start(std::string* error) {
    std::filesystem::create_directories(root_);
    const auto cfg = root_ / "agent.yaml";
    testing::WriteTextFile(cfg, config_);
    port_file_ = root_ / "agent.port";
    std::error_code ec;
    std::filesystem::remove(port_file_, ec);
    subprocess::Options o;
    o.argv = {Wine(),          (kMingw / "agent" / "labtrace-agent.exe").string(),
              "--config",      WinPath(cfg),
              "--listen",      "127.0.0.1:0",
              "--rest-listen", "127.0.0.1:0",
              "--port-file",   WinPath(port_file_),
              "--log-level",   "debug"};
    o.extra_env = WineEnv();
    o.extra_env.insert(o.extra_env.end(), env_.begin(), env_.end());
    o.output_cap = 4 << 20;
    if (!process_.Start(o, error)) return false;
    const bool up = testing::WaitFor(
        [&] {
          std::ifstream in(port_file_);
          return (in >> port_ >> rest_port_) && port_ > 0;
        },
        std::chrono::seconds(90));
    if (!up) *error = "agent.exe did not come up; output:\n" + process_.output();
    return up;
  }

  // Ctrl-C for the Windows program (wine turns SIGINT into CTRL_C_EVENT).
  std::optional<subprocess::Result> Interrupt(std::chrono::seconds timeout) {
    process_.Interrupt();
    return process_.Wait(timeout);
  }

  void Stop() {
    if (!process_.running()) return;
    if (!Interrupt(std::chrono::seconds(30))) process_.Kill();
  }

  std::string address() const {
    return "127.0.0.1:" + std::to_string(port_);
  }
  int rest_port() const { return rest_port_; }
  std::string output() const { return process_.output(); }
  bool running() const { return process_.running(); }

 private:
  const std::filesystem::path root_;
  const std::string config_;
  const std::vector<std::string> env_;
  std::filesystem::path port_file_;
  subprocess::Process process_;
  int port_ = 0;
  int rest_port_ = 0;
};

class WindowsAgentTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    if (!std::filesystem::exists(kMingw / "agent" / "labtrace-agent.exe")) {
      skip_ = "the Windows cross build is missing (bash "
              "deploy/windows/cross_build.sh builds build-mingw/)";
      return;
    }
    if (Wine().empty()) {
      skip_ = "wine is not installed (deploy/install_deps.sh --windows-tests)";
      return;
    }
    etl_ = testing::TestdataEtl("s4_WindowsUpdate.20251008.140245.443.8.etl");
    if (etl_.empty()) {
      skip_ = "../shared/testdata/etl is not beside this checkout";
      return;
    }
    // Creates the wine prefix on first use (the runner serialises that).
    subprocess::Options boot;
    boot.argv = {"bash", LABTRACE_WINE_RUNNER,
                 (kMingw / "agent" / "labtrace-agent.exe").string(),
                 "--version"};
    boot.extra_env = {"LABTRACE_WINE_PREFIX=" + std::string(LABTRACE_WINE_PREFIX)};
    boot.timeout = std::chrono::seconds(400);
    subprocess::Result b = subprocess::Run(boot);
    if (!b.ok() || b.output.find("labtrace-agent") == std::string::npos) {
      setup_error_ = "wine cannot run labtrace-agent.exe: " + b.Describe() +
                     "\n" + b.output;
      return;
    }
    dir_ = new testing::TempDir();
    // Spaces and non-ASCII characters in the data dir's path.
    data_ = dir_->path() / PathFromUtf8("lab data \xc3\xbc\xc3\xa9");
    state_ = dir_->path() / "wpr state";
    std::filesystem::create_directories(state_);
    agent_ = new WineAgent(dir_->path() / "agent", ConfigYaml(data_), Env());
    std::string error;
    if (!agent_->Start(&error)) setup_error_ = error;
    inventory_ = dir_->path() / "inventory.yaml";
    testing::WriteTextFile(
        inventory_, "defaults:\n  connect_timeout: 5s\nhosts:\n  - {name: "
                    "winvm, address: \"" +
                        agent_->address() + "\", labels: {os: windows}}\n");
  }

  static void TearDownTestSuite() {
    delete agent_;
    agent_ = nullptr;
    delete dir_;
    dir_ = nullptr;
  }

  void SetUp() override {
    if (!skip_.empty()) GTEST_SKIP() << skip_;
    ASSERT_TRUE(setup_error_.empty()) << setup_error_;
    Control("");
  }

  static std::string ConfigYaml(const std::filesystem::path& data,
                                const std::string& wpr_path = "") {
    return "data_dir: \"" + Escape(WinPath(data)) + "\"\n" +
           "wpr:\n  path: \"" +
           Escape(wpr_path.empty()
                      ? WinPath(kMingw / "tests" / "fake_wpr.exe")
                      : wpr_path) +
           "\"\n  stop_timeout: 8s\n  start_timeout: 30s\n"
           "exec:\n  enabled: true\n"
           "  allow: [\"C:\\\\windows\\\\system32\\\\cmd.exe\"]\n"
           "profiles:\n"
           "  - {name: default, backend: wpr, args: "
           "[\"embedded:labtrace.wprp!Labtrace\"]}\n"
           "  - {name: general, backend: wpr, args: [GeneralProfile]}\n";
  }

  static std::string Escape(const std::string& s) {
    std::string out;
    for (char c : s) out += c == '\\' ? std::string("\\\\") : std::string(1, c);
    return out;
  }

  static std::vector<std::string> Env() {
    return {"FAKE_WPR_STATE_DIR=" + WinPath(state_),
            "FAKE_WPR_ETL_SOURCE=" + WinPath(etl_)};
  }

  static void Control(const std::string& text) {
    testing::WriteTextFile(state_ / "control.env", text);
  }

  // Runs the Linux `labtrace ARGS --inventory INV`.
  static CliResult Labtrace(const std::vector<std::string>& args) {
    static int n = 0;
    const auto out = dir_->path() / ("cli_out_" + std::to_string(++n));
    std::string cmd = "exec " + ShellQuote(testing::ControllerBinary());
    // --inventory first: after a "--" it would be exec's command's.
    cmd += " --inventory " + ShellQuote(inventory_.string());
    for (const auto& a : args) cmd += " " + ShellQuote(a);
    cmd += " >" + ShellQuote(out.string());
    subprocess::Options o;
    o.argv = {"/bin/sh", "-c", cmd};
    o.timeout = std::chrono::seconds(300);
    o.output_cap = 1 << 20;
    subprocess::Result r = subprocess::Run(o);
    return {r.outcome == subprocess::Outcome::kExited ? r.exit_code : -1,
            testing::ReadTextFile(out), r.output};
  }

  static std::string Curl(const std::vector<std::string>& args) {
    subprocess::Options o;
    o.argv = {"curl", "-sS", "--max-time", "60"};
    o.argv.insert(o.argv.end(), args.begin(), args.end());
    o.timeout = std::chrono::seconds(90);
    o.output_cap = 8 << 20;
    return subprocess::Run(o).output;
  }

  static std::string skip_;
  static std::string setup_error_;
  static testing::TempDir* dir_;
  static std::filesystem::path etl_, data_, state_, inventory_;
  static WineAgent* agent_;
};

std::string WindowsAgentTest::skip_;
std::string WindowsAgentTest::setup_error_;
testing::TempDir* WindowsAgentTest::dir_ = nullptr;
std::filesystem::path WindowsAgentTest::etl_;
std::filesystem::path WindowsAgentTest::data_;
std::filesystem::path WindowsAgentTest::state_;
std::filesystem::path WindowsAgentTest::inventory_;
WineAgent* WindowsAgentTest::agent_ = nullptr;

constexpr char kPlan[] = R"yaml(
run: winlab
hosts: os=windows
defaults:
  profile: default
  timeout: 60s
  stop_timeout: 30s
setup:
  - name: setup_env
    command: ["C:\\windows\\system32\\cmd.exe", "/c", "echo setting up on %COMPUTERNAME%"]
tests:
  - name: unit_tests
    command: ["C:\\windows\\system32\\cmd.exe", "/c", "echo unit tests passed"]
  - name: stress_tests
    profile: general
    command: ["C:\\windows\\system32\\cmd.exe", "/c", "echo stress && ver"]
cleanup:
  - name: cleanup_env
    command: ["C:\\windows\\system32\\cmd.exe", "/c", "echo cleaned up"]
)yaml";

TEST_F(WindowsAgentTest, LabPlanEveryStepItsOwnEtlCollectedAndVerified) {
  const auto plan = dir_->path() / "plan.yaml";
  testing::WriteTextFile(plan, kPlan);
  const auto out = dir_->path() / "runs";
  const auto started = std::chrono::steady_clock::now();
  CliResult r = Labtrace(
      {"run", plan.string(), "--out", out.string(), "--run-id", "win1"});
  const auto took = std::chrono::duration_cast<std::chrono::milliseconds>(
      std::chrono::steady_clock::now() - started);
  ASSERT_EQ(r.exit_code, 0) << r.err << r.out << agent_->output();
  json m = json::parse(testing::ReadTextFile(out / "win1" / "manifest.json"));
  ASSERT_EQ(m["steps"].size(), 4u) << m.dump(2);
  for (const auto& s : m["steps"]) EXPECT_TRUE(s["passed"]) << s.dump();
  int etl = 0, logs = 0;
  std::set<std::string> steps_with_etl;
  for (const auto& f : m["files"]) {
    EXPECT_EQ(f["status"], "collected") << f.dump();
    const auto path = out / "win1" / f["file"].get<std::string>();
    // The digest the agent computed on Windows matches the bytes here.
    EXPECT_EQ(*Sha256File(path), f["sha256"].get<std::string>()) << path;
    if (f["backend"] == "wpr") {
      ++etl;
      steps_with_etl.insert(f["step"].get<std::string>());
      EXPECT_EQ(*Sha256File(path), *Sha256File(etl_));
      EXPECT_EQ(f["summary"]["format"], "etl") << f.dump();
      EXPECT_TRUE(f["summary"]["header_valid"]) << f.dump();
    } else {
      ++logs;
    }
  }
  EXPECT_EQ(etl, 4) << r.out << r.err;
  EXPECT_EQ(logs, 4);
  EXPECT_EQ(steps_with_etl.size(), 4u);
  // The step's own output came back from cmd.exe.
  EXPECT_THAT(r.out + r.err, HasSubstr("winvm"));
  // The files are in the agent's data dir (spaces, non-ASCII) too.
  int on_agent = 0;
  for (const auto& e :
       std::filesystem::directory_iterator(data_ / "artifacts")) {
    on_agent += e.path().extension() == ".etl";
  }
  EXPECT_GE(on_agent, 4);
  std::printf("[ figures ] Windows agent under wine: plan of 4 steps, %d ETL + "
              "%d logs collected and verified in %lld ms\n",
              etl, logs, static_cast<long long>(took.count()));
}

// `labtrace exec` against the Windows agent: RunCommandStreamed reads the
// log file while cmd.exe writes it and the runner then moves it into the
// store (Windows sharing rules); the streamed bytes are the log's bytes.
TEST_F(WindowsAgentTest, ExecStreamsCmdOutputAndCollectsTheLog) {
  const auto out = dir_->path() / "exec_out";
  CliResult r = Labtrace({"exec", "winexec", "--profile", "general",
                          "--collect", out.string(), "--run-id", "wexec", "--",
                          "C:\\windows\\system32\\cmd.exe", "/c",
                          "echo first&& echo second&& exit /b 3"});
  EXPECT_EQ(r.exit_code, 3) << r.err << r.out << agent_->output();
  EXPECT_THAT(r.out, HasSubstr("first"));
  EXPECT_THAT(r.out, HasSubstr("second"));
  std::string log;
  int etl = 0;
  for (const auto& host : std::filesystem::directory_iterator(out / "wexec")) {
    for (const auto& e : std::filesystem::directory_iterator(host.path())) {
      if (e.path().extension() == ".log") log = testing::ReadTextFile(e.path());
      etl += e.path().extension() == ".etl";
    }
  }
  EXPECT_EQ(etl, 1);
  ASSERT_FALSE(log.empty()) << r.out << r.err;
  // What was printed is the log, byte for byte (cmd.exe's CRLFs included).
  EXPECT_EQ(r.out, log);
}

TEST_F(WindowsAgentTest, RestMirrorWithCurl) {
  const std::string base =
      "http://127.0.0.1:" + std::to_string(agent_->rest_port());
  json info = json::parse(Curl({base + "/v1/info"}), nullptr, false);
  ASSERT_FALSE(info.is_discarded()) << Curl({base + "/v1/info"});
  EXPECT_THAT(info["os"].get<std::string>(), HasSubstr("Windows"));
  // A trace started and stopped over REST, then downloaded with curl.
  Curl({"-X", "POST", "-H", "Content-Type: application/json", "-d",
        R"({"name":"rest_trace","profile":"general"})", base + "/v1/traces"});
  json stopped = json::parse(
      Curl({"-X", "POST", "-d", "", base + "/v1/traces/rest_trace/stop"}),
      nullptr, false);
  ASSERT_FALSE(stopped.is_discarded());
  const std::string id = stopped["artifact"]["id"];
  const auto file = dir_->path() / "rest.etl";
  Curl({"-o", file.string(), base + "/v1/artifacts/" + id + "/content"});
  EXPECT_EQ(*Sha256File(file), stopped["artifact"]["sha256"]);
}

TEST_F(WindowsAgentTest, WprStartFailureHasWprsWordsAndAgentKeepsServing) {
  Control("FAKE_WPR_START_FAIL_HRESULT=0xc5585011\n");
  CliResult r = Labtrace({"start", "denied", "--profile", "general"});
  EXPECT_EQ(r.exit_code, 4) << r.err << r.out;
  EXPECT_THAT(r.out + r.err,
              HasSubstr("Failed to enable the policy to profile system "
                        "performance"));
  EXPECT_THAT(r.out + r.err, HasSubstr("0xc5585011"));
  EXPECT_THAT(r.out + r.err, HasSubstr("administrator"));
  Control("");
  CliResult again = Labtrace({"start", "denied", "--profile", "general"});
  EXPECT_EQ(again.exit_code, 0) << again.err;
  EXPECT_EQ(Labtrace({"stop", "denied"}).exit_code, 0);
}

TEST_F(WindowsAgentTest, StopTimeoutIsCancelledWithAClearError) {
  ASSERT_EQ(Labtrace({"start", "slowstop", "--profile", "general"}).exit_code,
            0);
  Control("FAKE_WPR_STOP_DELAY_MS=60000\n");  // The agent allows 8 s.
  CliResult r = Labtrace({"stop", "slowstop"});
  EXPECT_EQ(r.exit_code, 4) << r.err << r.out;
  EXPECT_THAT(r.out + r.err, HasSubstr("did not finish within 8s"));
  EXPECT_THAT(r.out + r.err, HasSubstr("wpr -cancel succeeded"));
  Control("");
  EXPECT_EQ(Labtrace({"info"}).exit_code, 0);
}

TEST_F(WindowsAgentTest, MissingWprIsAClearErrorAndTheAgentServes) {
  WineAgent missing(dir_->path() / "agent_missing",
                    ConfigYaml(dir_->path() / "data2",
                               "C:\\no such dir\\wpr.exe"),
                    Env());
  std::string error;
  ASSERT_TRUE(missing.Start(&error)) << error;
  testing::WriteTextFile(dir_->path() / "inv2.yaml",
                         "hosts:\n  - {name: w2, address: \"" +
                             missing.address() + "\"}\n");
  subprocess::Options o;
  o.argv = {testing::ControllerBinary(), "start", "t", "--profile", "general",
            "--inventory", (dir_->path() / "inv2.yaml").string()};
  o.timeout = std::chrono::seconds(120);
  subprocess::Result r = subprocess::Run(o);
  EXPECT_EQ(r.exit_code, 4) << r.output;
  EXPECT_THAT(r.output, HasSubstr("C:\\no such dir\\wpr.exe"));
  EXPECT_THAT(r.output, HasSubstr("not found"));
  o.argv = {testing::ControllerBinary(), "info", "--inventory",
            (dir_->path() / "inv2.yaml").string()};
  EXPECT_EQ(subprocess::Run(o).exit_code, 0);
}

TEST_F(WindowsAgentTest, CtrlCStopsActiveTracesAndKeepsTheirFiles) {
  WineAgent a(dir_->path() / "agent_ctrlc", ConfigYaml(dir_->path() / "data3"),
              Env());
  std::string error;
  ASSERT_TRUE(a.Start(&error)) << error;
  testing::WriteTextFile(dir_->path() / "inv3.yaml",
                         "hosts:\n  - {name: w3, address: \"" + a.address() +
                             "\"}\n");
  subprocess::Options o;
  o.argv = {testing::ControllerBinary(), "start", "kept", "--profile",
            "general", "--inventory", (dir_->path() / "inv3.yaml").string()};
  o.timeout = std::chrono::seconds(120);
  ASSERT_EQ(subprocess::Run(o).exit_code, 0);
  std::optional<subprocess::Result> r = a.Interrupt(std::chrono::seconds(60));
  ASSERT_TRUE(r.has_value()) << "the agent did not stop on Ctrl-C";
  EXPECT_EQ(r->exit_code, 0) << r->output;
  EXPECT_THAT(r->output, HasSubstr("stopped kept"));
  bool kept = false;
  for (const auto& e : std::filesystem::directory_iterator(
           dir_->path() / "data3" / "artifacts")) {
    kept = kept || (e.path().extension() == ".etl" &&
                    PathToUtf8(e.path().filename()).rfind("kept_", 0) == 0);
  }
  EXPECT_TRUE(kept);
}

TEST_F(WindowsAgentTest, WindowsControllerDrivesTheAgentAndInspectsEtl) {
  // labtrace.exe (the controller built for Windows) under wine.
  auto run = [&](std::vector<std::string> args) {
    subprocess::Options o;
    o.argv = {Wine(), (kMingw / "controller" / "labtrace.exe").string()};
    o.argv.insert(o.argv.end(), args.begin(), args.end());
    o.extra_env = WineEnv();
    o.timeout = std::chrono::seconds(120);
    o.output_cap = 1 << 20;
    return subprocess::Run(o);
  };
  const std::string inv = WinPath(inventory_);
  subprocess::Result info = run({"info", "--inventory", inv});
  EXPECT_EQ(info.exit_code, 0) << info.output;
  EXPECT_THAT(info.output, HasSubstr("winvm"));
  EXPECT_THAT(info.output, HasSubstr("Windows"));
  subprocess::Result start =
      run({"start", "from_windows", "--profile", "general", "--inventory", inv});
  ASSERT_EQ(start.exit_code, 0) << start.output;
  const auto out = dir_->path() / PathFromUtf8("collected \xc3\xa9");
  subprocess::Result stop = run({"stop", "from_windows", "--collect",
                                 WinPath(out), "--inventory", inv});
  ASSERT_EQ(stop.exit_code, 0) << stop.output;
  std::filesystem::path etl;
  for (const auto& e : std::filesystem::recursive_directory_iterator(out)) {
    if (e.path().extension() == ".etl") etl = e.path();
  }
  ASSERT_FALSE(etl.empty()) << stop.output;
  EXPECT_EQ(*Sha256File(etl), *Sha256File(etl_));
  subprocess::Result inspect = run({"inspect", WinPath(etl), "--json"});
  // The file (a real Windows Update trace) lost 41 events: a data problem,
  // exit code 5, and said so.
  EXPECT_EQ(inspect.exit_code, 5) << inspect.output;
  EXPECT_THAT(inspect.output, HasSubstr("\"etl\""));
  EXPECT_THAT(inspect.output, HasSubstr("41 events lost"));
}

// The agent as a Windows service under wine's Service Control Manager: install,
// start, a stop that takes seconds (STOP_PENDING with an advancing checkpoint)
// and keeps the active trace's file, a start that fails, uninstall. In a wine
// prefix of its own, so its wineserver (kept alive with -p, as services need)
// does not touch the other tests'.
class WindowsServiceTest : public WindowsAgentTest {
 protected:
  void SetUp() override {
    WindowsAgentTest::SetUp();
    if (IsSkipped() || HasFatalFailure()) return;
    prefix_ = dir_->path() / "service-wineprefix";
    ASSERT_EQ(std::system(("cp -a " + ShellQuote(LABTRACE_WINE_PREFIX) + " " +
                           ShellQuote(prefix_.string()))
                              .c_str()),
              0);
    svc_ = dir_->path() / "svc";
    std::filesystem::create_directories(svc_ / "wpr");
    // wine starts services with the system environment from the registry
    // (not the caller's, nor the service's own Environment value): that is
    // how fake_wpr.exe, run by the service, finds its state.
    for (const std::string& kv :
         {"FAKE_WPR_STATE_DIR=" + WinPath(svc_ / "wpr"),
          "FAKE_WPR_ETL_SOURCE=" + WinPath(etl_)}) {
      const std::size_t eq = kv.find('=');
      ASSERT_TRUE(Wine({"reg", "add",
                        "HKLM\\System\\CurrentControlSet\\Control\\Session "
                        "Manager\\Environment",
                        "/v", kv.substr(0, eq), "/d", kv.substr(eq + 1), "/f"})
                      .ok());
    }
    // A fresh, persistent wineserver: services outlive our short commands.
    Wineserver({"-k"});
    Wineserver({"-p"});
  }
  void TearDown() override {
    if (!prefix_.empty()) {
      Wine({(kMingw / "agent" / "labtrace-agent.exe").string(), "service",
            "uninstall"});
      Wineserver({"-k"});
    }
  }

  std::vector<std::string> Env() const {
    std::vector<std::string> env = WineEnv();
    env[0] = "WINEPREFIX=" + prefix_.string();
    env.push_back("FAKE_WPR_STATE_DIR=" + WinPath(svc_ / "wpr"));
    env.push_back("FAKE_WPR_ETL_SOURCE=" + WinPath(etl_));
    return env;
  }
  subprocess::Result Wine(std::vector<std::string> args) const {
    subprocess::Options o;
    o.argv = {::labtrace::Wine()};
    o.argv.insert(o.argv.end(), args.begin(), args.end());
    o.extra_env = Env();
    o.timeout = std::chrono::seconds(120);
    return subprocess::Run(o);
  }
  void Wineserver(std::vector<std::string> args) const {
    subprocess::Options o;
    o.argv = {subprocess::FindProgram("wineserver").empty()
                  ? "/usr/lib/wine/wineserver64"
                  : "wineserver"};
    o.argv.insert(o.argv.end(), args.begin(), args.end());
    o.extra_env = Env();
    o.timeout = std::chrono::seconds(60);
    subprocess::Run(o);
  }
  // "RUNNING", "STOP_PENDING", ... and the checkpoint, from `sc query`.
  std::pair<std::string, std::string> Query() const {
    const std::string out = Wine({"sc", "query", "labtrace-agent"}).output;
    auto field = [&out](const std::string& key) {
      std::size_t p = out.find(key);
      if (p == std::string::npos) return std::string();
      p = out.find(':', p) + 1;
      std::size_t e = out.find('\n', p);
      std::string v = out.substr(p, e - p);
      v.erase(0, v.find_first_not_of(" \t0123456789"));
      while (!v.empty() && (v.back() == '\r' || v.back() == ' ')) v.pop_back();
      return v;
    };
    return {field("STATE"), field("CHECKPOINT")};
  }
  subprocess::Result Install(const std::string& listen) const {
    const auto cfg = svc_ / "agent.yaml";
    testing::WriteTextFile(cfg, ConfigYaml(svc_ / PathFromUtf8("data \xc3\xbc")));
    return Wine({(kMingw / "agent" / "labtrace-agent.exe").string(), "service",
                 "install", "--config", WinPath(cfg), "--listen", listen,
                 "--rest-listen", "off", "--port-file",
                 WinPath(svc_ / "port")});
  }

  std::filesystem::path prefix_, svc_;
};

TEST_F(WindowsServiceTest, InstallStartSlowStopKeepsTheTraceUninstall) {
  subprocess::Result in = Install("127.0.0.1:0");
  ASSERT_TRUE(in.ok()) << in.Describe() << in.output;
  EXPECT_THAT(in.output, HasSubstr("installed the Windows service"));
  // wine's services.exe may start an auto-start service by itself.
  Wine({"sc", "start", "labtrace-agent"});
  int port = 0;
  ASSERT_TRUE(testing::WaitFor(
      [&] {
        std::ifstream f(svc_ / "port");
        return (f >> port) && port > 0;
      },
      std::chrono::seconds(60)))
      << Query().first;
  EXPECT_EQ(Query().first, "RUNNING");
  testing::WriteTextFile(svc_ / "inv.yaml",
                         "hosts:\n  - {name: svc, address: \"127.0.0.1:" +
                             std::to_string(port) + "\"}\n");
  subprocess::Options o;
  o.argv = {testing::ControllerBinary(), "start", "in_service", "--profile",
            "general", "--inventory", (svc_ / "inv.yaml").string()};
  o.timeout = std::chrono::seconds(60);
  subprocess::Result started = subprocess::Run(o);
  ASSERT_EQ(started.exit_code, 0) << started.output;

  // A stop of the service must wait for wpr -stop (6 s here).
  testing::WriteTextFile(svc_ / "wpr" / "control.env",
                         "FAKE_WPR_STOP_DELAY_MS=6000\n");
  const auto t0 = std::chrono::steady_clock::now();
  subprocess::Result stop = Wine({"sc", "stop", "labtrace-agent"});
  std::set<std::string> checkpoints;
  std::string state;
  while (std::chrono::steady_clock::now() - t0 < std::chrono::seconds(60)) {
    auto [st, cp] = Query();
    state = st;
    if (state == "STOP_PENDING") checkpoints.insert(cp);
    if (state == "STOPPED") break;
    std::this_thread::sleep_for(std::chrono::milliseconds(500));
  }
  const auto took = std::chrono::duration_cast<std::chrono::milliseconds>(
      std::chrono::steady_clock::now() - t0);
  EXPECT_EQ(state, "STOPPED") << stop.output;
  EXPECT_GE(took, std::chrono::seconds(5));
  // The host re-reported STOP_PENDING with a new checkpoint while waiting.
  EXPECT_GE(checkpoints.size(), 2u) << ::testing::PrintToString(checkpoints);
  bool kept = false;
  for (const auto& e : std::filesystem::directory_iterator(
           svc_ / PathFromUtf8("data \xc3\xbc") / "artifacts")) {
    kept = kept || PathToUtf8(e.path().filename()).rfind("in_service_", 0) == 0;
  }
  EXPECT_TRUE(kept) << "the active trace's file was not kept";
  std::printf("[ figures ] service stop under wine with a 6 s wpr -stop: %lld "
              "ms, %zu STOP_PENDING checkpoints seen\n",
              static_cast<long long>(took.count()), checkpoints.size());

  subprocess::Result un = Wine({(kMingw / "agent" / "labtrace-agent.exe").string(),
                                "service", "uninstall"});
  EXPECT_TRUE(un.ok()) << un.output;
  EXPECT_THAT(un.output, HasSubstr("deleted service labtrace-agent"));
  EXPECT_EQ(Query().first, "");
}

TEST_F(WindowsServiceTest, FailedStartIsReportedToTheScm) {
  // Another process holds the port: the agent cannot listen.
  WineAgent holder(dir_->path() / "holder", ConfigYaml(dir_->path() / "hd"),
                   WindowsAgentTest::Env());
  std::string error;
  ASSERT_TRUE(holder.Start(&error)) << error;
  subprocess::Result in = Install(holder.address());
  ASSERT_TRUE(in.ok()) << in.output;
  Wine({"sc", "start", "labtrace-agent"});
  std::string state;
  ASSERT_TRUE(testing::WaitFor(
      [&] {
        state = Query().first;
        return state == "STOPPED";
      },
      std::chrono::seconds(60)))
      << state;
  const std::string q = Wine({"sc", "query", "labtrace-agent"}).output;
  EXPECT_THAT(q, HasSubstr("1066"));  // ERROR_SERVICE_SPECIFIC_ERROR
  EXPECT_THAT(testing::ReadTextFile(svc_ / PathFromUtf8("data \xc3\xbc") /
                                    "agent.log"),
              HasSubstr("cannot listen on " + holder.address()));
}

}  // namespace
}  // namespace labtrace
