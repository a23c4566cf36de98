// The real `labtrace` binary against a small fleet on loopback: five real
// agents (fake wpr backend, /bin/sh allowed), one address where nothing
// listens, and one agent frozen with SIGSTOP.

#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>

#include <fstream>
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
using testing::Ctx;
using ::testing::HasSubstr;
using ::testing::Not;

constexpr int kLive = 5;

std::string ShellQuote(const std::string& s) {
  std::string out = "'";
  for (char c : s) {
    if (c == '\'') {
      out += "'\\''";
    } else {
      out += c;
    }
  }
  return out + "'";
}

// A port on which nothing listens: bound but never listen()ed, so
// connections are refused, and held (the fd stays open for the whole test
// process) so no other process can take it meanwhile.
int RefusingPort() {
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof(addr);
  if (fd < 0 ||
      ::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0 ||
      ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
    ADD_FAILURE() << "cannot reserve a port";
    return 1;
  }
  return ntohs(addr.sin_port);
}

struct CliResult {
  int exit_code = -1;
  std::string out;  // stdout
  std::string err;  // stderr
  absl::Duration took;
  json Json() const {
    return json::parse(out, nullptr, /*allow_exceptions=*/false);
  }
};

class FleetTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new testing::TempDir();
    etl_ = testing::TestdataEtl("s4_WindowsUpdate.20251008.140245.443.8.etl");
    if (etl_.empty()) return;
    std::string inventory = "defaults:\n  connect_timeout: 2s\nhosts:\n";
    for (int i = 0; i < kLive + 1; ++i) {
      const std::string name = "vm" + std::to_string(i);
      auto state = dir_->path() / ("wpr_" + name);
      std::filesystem::create_directories(state);
      std::string cfg = "wpr:\n  path: " + testing::FakeWprBinary() +
                        "\nprofiles:\n  - {name: general, backend: wpr, args: "
                        "[GeneralProfile]}\n";
      if (i != 1)
        cfg += "exec:\n  enabled: true\n  allow: [/bin/sh, /bin/sleep]\n";
      auto* agent = new testing::AgentProcess(testing::AgentProcess::Options{
          dir_->path() / ("data_" + name),
          cfg,
          {"--log-level", "warn"},
          {"FAKE_WPR_STATE_DIR=" + state.string(),
           "FAKE_WPR_ETL_SOURCE=" + etl_.string()}});
      std::string error;
      if (!agent->Start(&error)) {
        ADD_FAILURE() << error;
        return;
      }
      agents_.push_back(agent);
      // vm5 is the hung one: frozen after it started listening.
      inventory += "  - {name: " + name + ", address: \"" + agent->address() +
                   "\", labels: {state: " + (i < kLive ? "live" : "hung") +
                   "}}\n";
    }
    ::kill(static_cast<pid_t>(agents_[kLive]->pid()), SIGSTOP);
    inventory += "  - {name: gone, address: \"127.0.0.1:" +
                 std::to_string(RefusingPort()) +
                 "\", labels: {state: gone}}\n";
    inventory_ = dir_->path() / "inventory.yaml";
    testing::WriteTextFile(inventory_, inventory);
  }

  static void TearDownTestSuite() {
    if (!agents_.empty())
      ::kill(static_cast<pid_t>(agents_[kLive]->pid()), SIGCONT);
    for (auto* a : agents_) delete a;
    agents_.clear();
    delete dir_;
  }

  void SetUp() override {
    if (etl_.empty())
      GTEST_SKIP() << "../shared/testdata/etl is not beside this checkout";
    ASSERT_EQ(agents_.size(), static_cast<std::size_t>(kLive + 1));
  }

  // Runs `labtrace ARGS --inventory INV`; stdout and stderr apart.
  static CliResult Labtrace(
      const std::vector<std::string>& args,
      std::chrono::seconds timeout = std::chrono::seconds(120)) {
    static int n = 0;
    const auto out = dir_->path() / ("cli_out_" + std::to_string(++n));
    std::string cmd = "exec " + ShellQuote(testing::ControllerBinary());
    // --inventory before the arguments: after a "--" it would be the
    // command's (labtrace exec).
    cmd += " --inventory " + ShellQuote(inventory_.string());
    for (const auto& a : args) cmd += " " + ShellQuote(a);
    cmd += " >" + ShellQuote(out.string());
    subprocess::Options o;
    o.argv = {"/bin/sh", "-c", cmd};
    o.timeout = timeout;
    o.output_cap = 1 << 20;
    subprocess::Result r = subprocess::Run(o);
    CliResult c;
    c.exit_code = r.outcome == subprocess::Outcome::kExited ? r.exit_code : -1;
    c.err = r.output;
    c.out = testing::ReadTextFile(out);
    c.took = absl::FromChrono(r.elapsed);
    return c;
  }

  static std::vector<v1::TraceSession> Active(int i) {
    v1::ListTracesResponse list;
    EXPECT_TRUE(agents_[i]->stub().ListTraces(Ctx().get(), {}, &list).ok());
    return {list.sessions().begin(), list.sessions().end()};
  }

  static std::vector<v1::Artifact> ArtifactsOf(int i,
                                               const std::string& run_id) {
    v1::ListArtifactsRequest req;
    req.set_run_id(run_id);
    v1::ListArtifactsResponse list;
    EXPECT_TRUE(agents_[i]->stub().ListArtifacts(Ctx().get(), req, &list).ok());
    return {list.artifacts().begin(), list.artifacts().end()};
  }

  static testing::TempDir* dir_;
  static std::filesystem::path etl_;
  static std::filesystem::path inventory_;
  static std::vector<testing::AgentProcess*> agents_;
};

testing::TempDir* FleetTest::dir_ = nullptr;
std::filesystem::path FleetTest::etl_;
std::filesystem::path FleetTest::inventory_;
std::vector<testing::AgentProcess*> FleetTest::agents_;

TEST_F(FleetTest, InfoReportsEveryHostAndDeadOnesDoNotBlock) {
  CliResult r = Labtrace({"info", "--json"});
  EXPECT_EQ(r.exit_code, 3) << r.err;
  EXPECT_LT(r.took,
            absl::Seconds(15));  // Bounded by the connect timeout, in parallel.
  json j = r.Json();
  ASSERT_TRUE(j.is_array()) << r.out;
  ASSERT_EQ(j.size(), 7u);
  std::map<std::string, std::string> outcome;
  for (const auto& h : j) outcome[h["host"]] = h["outcome"];
  for (int i = 0; i < kLive; ++i)
    EXPECT_EQ(outcome["vm" + std::to_string(i)], "ok");
  EXPECT_EQ(outcome["vm5"], "timed_out");
  EXPECT_EQ(outcome["gone"], "unreachable");
  EXPECT_EQ(j[0]["info"]["version"], LABTRACE_VERSION);

  // Human output: a table with every host.
  CliResult t = Labtrace({"info", "--hosts", "state=live"});
  EXPECT_EQ(t.exit_code, 0) << t.err;
  EXPECT_THAT(t.out, HasSubstr("HOST"));
  EXPECT_THAT(t.out, HasSubstr("vm4"));
}

TEST_F(FleetTest, StartStopCollectOnLiveHosts) {
  CliResult s = Labtrace({"start", "adhoc", "--profile", "general", "--run-id",
                          "adhoc-run", "--hosts", "state=live"});
  ASSERT_EQ(s.exit_code, 0) << s.err << s.out;
  for (int i = 0; i < kLive; ++i) EXPECT_EQ(Active(i).size(), 1u) << i;
  CliResult again =
      Labtrace({"start", "adhoc", "--profile", "general", "--hosts", "vm0"});
  EXPECT_EQ(again.exit_code, 4);
  EXPECT_THAT(again.out, HasSubstr("already"));

  const auto out = dir_->path() / "collected";
  CliResult st = Labtrace(
      {"stop", "adhoc", "--hosts", "state=live", "--collect", out.string()});
  ASSERT_EQ(st.exit_code, 0) << st.err << st.out;
  const std::string digest = *Sha256File(etl_);
  for (int i = 0; i < kLive; ++i) {
    const auto host_dir = out / "adhoc-run" / ("vm" + std::to_string(i));
    int files = 0;
    for (const auto& e : std::filesystem::directory_iterator(host_dir)) {
      EXPECT_EQ(*Sha256File(e.path()), digest) << e.path();
      ++files;
    }
    EXPECT_EQ(files, 1);
  }
}

TEST_F(FleetTest, StopAllStopsEverySessionAndReportsDeadHosts) {
  for (int i = 0; i < kLive; ++i) {
    for (const char* n : {"sa_one", "sa_two"}) {
      v1::StartTraceRequest req;
      req.set_name(n);
      req.set_profile("general");
      v1::TraceSession s;
      ASSERT_TRUE(agents_[i]->stub().StartTrace(Ctx().get(), req, &s).ok());
    }
  }
  CliResult r = Labtrace({"stop-all", "--json", "--timeout", "20s"});
  EXPECT_EQ(r.exit_code, 3) << r.err;
  EXPECT_LT(r.took, absl::Seconds(25));
  json j = r.Json();
  ASSERT_EQ(j.size(), 7u) << r.out;
  int stopped = 0;
  for (const auto& h : j) {
    if (h["outcome"] == "ok") {
      for (const auto& s : h["results"]) {
        EXPECT_EQ(s["session"]["state"], "TRACE_STATE_COMPLETED");
        ++stopped;
      }
    }
  }
  EXPECT_EQ(stopped, 2 * kLive);
  for (int i = 0; i < kLive; ++i) EXPECT_TRUE(Active(i).empty()) << i;
  // Safe to repeat: nothing left, same exit code for the dead hosts.
  CliResult again = Labtrace({"stop-all", "--timeout", "20s"});
  EXPECT_EQ(again.exit_code, 3);
  EXPECT_THAT(again.out, HasSubstr("(nothing running)"));
  EXPECT_THAT(again.out, HasSubstr("unreachable"));
  EXPECT_THAT(again.out, HasSubstr("timed_out"));
}

constexpr char kPlan[] = R"yaml(
run: fleetplan
hosts: "%HOSTS%"
defaults:
  profile: general
  timeout: 30s
  stop_timeout: 20s
setup:
  - name: setup_env
    command: [/bin/sh, -c, "echo setup on $(hostname)"]
tests:
  - name: passing
    command: [/bin/sh, -c, "echo fine"]
  - name: failing
    command: [/bin/sh, -c, "echo broken >&2; exit 7"]
  - name: controller_side
    run_on: controller
    command: [/bin/sh, -c, "echo driven from the controller"]
cleanup:
  - name: cleanup_env
    command: [/bin/sh, -c, "echo cleanup"]
)yaml";

std::string PlanFor(const std::string& hosts,
                    const std::string& extra_defaults = "") {
  std::string p = kPlan;
  p.replace(p.find("%HOSTS%"), 7, hosts);
  if (!extra_defaults.empty()) {
    p.replace(p.find("defaults:\n") + 10, 0, extra_defaults);
  }
  return p;
}

TEST_F(FleetTest, PlanRunEndToEndManifestMatchesAgents) {
  const auto plan = dir_->path() / "plan.yaml";
  testing::WriteTextFile(plan, PlanFor("vm0,vm2,vm3"));
  const auto out = dir_->path() / "runs";
  CliResult r = Labtrace(
      {"run", plan.string(), "--out", out.string(), "--run-id", "e2e"});
  EXPECT_EQ(r.exit_code, 4) << r.err << r.out;  // `failing` exits 7.
  EXPECT_THAT(r.out, HasSubstr("artifacts: "));
  json m = json::parse(testing::ReadTextFile(out / "e2e" / "manifest.json"));
  EXPECT_EQ(m["run_id"], "e2e");
  EXPECT_EQ(m["exit_code"], 4);
  ASSERT_EQ(m["steps"].size(), 5u);
  std::map<std::string, bool> passed;
  for (const auto& s : m["steps"]) passed[s["name"]] = s["passed"];
  EXPECT_TRUE(passed["setup_env"]);
  EXPECT_TRUE(passed["passing"]);
  EXPECT_FALSE(passed["failing"]);
  EXPECT_TRUE(passed["controller_side"]);
  EXPECT_TRUE(passed["cleanup_env"]);
  for (const auto& s : m["steps"]) {
    if (s["name"] != "failing") continue;
    for (const auto& h : s["hosts"]) EXPECT_EQ(h["exit_code"], 7);
  }
  // The trace files (fake wpr copies a Windows Update ETL with 41 lost
  // events) are flagged: a warning per file, the summary in the manifest.
  EXPECT_THAT(r.out,
              HasSubstr("41 events lost; raise the buffer count or size"));
  EXPECT_TRUE(m["lost_events"]);
  // Every file in the manifest is on disk, matches the agent's digest, and
  // every artifact of the run on every host is in the manifest.
  std::set<std::string> listed;
  for (const auto& f : m["files"]) {
    EXPECT_EQ(f["status"], "collected") << f.dump();
    const auto path = out / "e2e" / f["file"].get<std::string>();
    EXPECT_EQ(*Sha256File(path), f["sha256"].get<std::string>()) << path;
    listed.insert(f["host"].get<std::string>() + "/" +
                  f["artifact_id"].get<std::string>());
    if (f["backend"] == "wpr") {
      EXPECT_EQ(f["summary"]["events_lost"], 41);  // A number.
    }
  }
  int expected = 0;
  for (int i : {0, 2, 3}) {
    for (const v1::Artifact& a : ArtifactsOf(i, "e2e")) {
      EXPECT_TRUE(listed.count("vm" + std::to_string(i) + "/" + a.id()))
          << a.id();
      ++expected;
    }
  }
  // 4 agent-side steps x (trace + log) + 1 controller-side trace, per host.
  EXPECT_EQ(expected, 3 * 9);
  EXPECT_EQ(listed.size(), static_cast<std::size_t>(expected));
  // Rerun of the collection is idempotent: same command, nothing refetched.
  CliResult f = Labtrace(
      {"fetch", "--run", "e2e", "--out", out.string(), "--hosts", "vm0"});
  EXPECT_EQ(f.exit_code, 0) << f.err;
  EXPECT_THAT(f.out, HasSubstr("already_present"));
}

// Synchronised starts: every host prepares, then starts at one instant;
// the clocks and the spread are reported. A dead host is reported as such
// and does not hold up the others.
TEST_F(FleetTest, SynchronisedStartAndPlanWithSyncStart) {
  CliResult r = Labtrace({"start", "synced", "--profile", "general", "--sync",
                          "--hosts", "vm0,vm2,gone", "--timeout", "10s",
                          "--json"});
  EXPECT_EQ(r.exit_code, 3) << r.err << r.out;  // gone: unreachable.
  json j = r.Json();
  ASSERT_TRUE(j.is_array()) << r.out;
  ASSERT_EQ(j.size(), 3u);
  std::vector<double> late;
  for (const auto& h : j) {
    if (h["host"] == "gone") {
      EXPECT_EQ(h["outcome"], "unreachable");
      EXPECT_FALSE(h.contains("sync"));
      continue;
    }
    EXPECT_EQ(h["outcome"], "ok") << h.dump();
    EXPECT_EQ(h["session"]["state"], "TRACE_STATE_RUNNING");
    // Same machine, same clock: the estimate is close to zero.
    EXPECT_LT(std::abs(h["sync"]["clock_offset_ms"].get<double>()), 50.0);
    EXPECT_GT(h["sync"]["rtt_ms"].get<double>(), 0.0);
    // Started at or after the agreed instant, never before it.
    ASSERT_TRUE(h["sync"]["late_ms"].is_number()) << h.dump();
    late.push_back(h["sync"]["late_ms"].get<double>());
    EXPECT_GE(late.back(), -5.0);
    EXPECT_LT(h["sync"]["spread_ms"].get<double>(), 1000.0);
  }
  EXPECT_EQ(late.size(), 2u);
  for (int i : {0, 2}) {
    auto active = Active(i);
    ASSERT_EQ(active.size(), 1u);
    EXPECT_EQ(active[0].state(), v1::TRACE_STATE_RUNNING);
  }
  CliResult human = Labtrace({"start", "synced2", "--profile", "general",
                              "--sync", "--hosts", "vm0,vm2"});
  EXPECT_EQ(human.exit_code, 0) << human.err;
  EXPECT_THAT(human.err,
              HasSubstr("synchronised start: 2 host(s) started within"));
  EXPECT_EQ(Labtrace({"stop-all", "--hosts", "vm0,vm2"}).exit_code, 0);

  // A plan with sync_start: clocks in the manifest, every step's traces
  // started at its agreed instant (agent-side and controller-side steps).
  std::string text = PlanFor("vm0,vm2,vm3");
  text.replace(text.find("defaults:"), 0, "sync_start: true\n");
  const auto plan = dir_->path() / "sync_plan.yaml";
  testing::WriteTextFile(plan, text);
  const auto out = dir_->path() / "sync_runs";
  CliResult run = Labtrace(
      {"run", plan.string(), "--out", out.string(), "--run-id", "synced-run"});
  EXPECT_EQ(run.exit_code, 4) << run.err << run.out;  // `failing` exits 7.
  EXPECT_THAT(run.err + run.out, HasSubstr("synchronised start: spread"));
  json m = json::parse(
      testing::ReadTextFile(out / "synced-run" / "manifest.json"));
  EXPECT_TRUE(m["sync_start"]);
  ASSERT_EQ(m["clock_offsets"].size(), 3u) << m["clock_offsets"].dump();
  for (const auto& [host, c] : m["clock_offsets"].items()) {
    EXPECT_LT(std::abs(c["offset_ms"].get<double>()), 50.0) << host;
  }
  for (const auto& s : m["steps"]) {
    ASSERT_TRUE(s["sync_instant"].is_string()) << s.dump();
    const std::string instant = s["sync_instant"];
    EXPECT_LT(s["start_spread_ms"].get<double>(), 1000.0);
    for (const auto& h : s["hosts"]) {
      ASSERT_TRUE(h["trace_started_at"].is_string()) << h.dump();
      absl::Time at, started;
      std::string err;
      ASSERT_TRUE(absl::ParseTime(absl::RFC3339_full, instant, &at, &err));
      ASSERT_TRUE(absl::ParseTime(absl::RFC3339_full,
                                  h["trace_started_at"].get<std::string>(),
                                  &started, &err));
      EXPECT_GE(started - at, absl::Milliseconds(-5)) << h.dump();
    }
  }
}

// JSON that scripts can trust: the manifest of a real run validates against
// the schema in the repo (and a manifest with a counter as a string does
// not); --json prints zeros and falses instead of leaving keys out.
TEST_F(FleetTest, ManifestMatchesItsJsonSchemaAndJsonPrintsZeros) {
  subprocess::Options probe;
  probe.argv = {"/usr/bin/python3", "-c", "import jsonschema"};
  if (!subprocess::Run(probe).ok())
    GTEST_SKIP() << "python3-jsonschema is missing (bash deploy/install_deps.sh)";
  const auto plan = dir_->path() / "schema_plan.yaml";
  testing::WriteTextFile(plan, PlanFor("vm0,vm2"));
  const auto out = dir_->path() / "schema_runs";
  CliResult r = Labtrace(
      {"run", plan.string(), "--out", out.string(), "--run-id", "schema"});
  EXPECT_EQ(r.exit_code, 4) << r.err;
  const auto manifest = out / "schema" / "manifest.json";
  const auto schema = testing::SourcePath("controller/report/manifest.schema.json");
  const char* kValidate =
      "import json, sys, jsonschema\n"
      "m = json.load(open(sys.argv[1]))\n"
      "if len(sys.argv) > 3: m['files'][0]['summary']['events_lost'] = '41'\n"
      "jsonschema.validate(m, json.load(open(sys.argv[2])),\n"
      "                    format_checker=jsonschema.FormatChecker())\n";
  subprocess::Options v;
  v.argv = {"/usr/bin/python3", "-c", kValidate, manifest.string(),
            schema.string()};
  subprocess::Result valid = subprocess::Run(v);
  EXPECT_TRUE(valid.ok()) << valid.output;
  v.argv.push_back("break-it");
  subprocess::Result broken = subprocess::Run(v);
  EXPECT_FALSE(broken.ok());
  EXPECT_THAT(broken.output, HasSubstr("is not of type 'integer'"));

  json m = json::parse(testing::ReadTextFile(manifest));
  EXPECT_EQ(m["schema_version"], 1);
  EXPECT_EQ(m["labtrace_version"], LABTRACE_VERSION);
  EXPECT_TRUE(m["command_line"].is_array());
  EXPECT_TRUE(m["files"][0]["size_bytes"].is_number());

  // A running session: zero bytes and false flags are keys with values.
  v1::StartTraceRequest req;
  req.set_name("zeros");
  req.set_profile("general");
  v1::TraceSession s;
  ASSERT_TRUE(agents_[0]->stub().StartTrace(Ctx().get(), req, &s).ok());
  CliResult st = Labtrace({"status", "--hosts", "vm0", "--json"});
  EXPECT_EQ(st.exit_code, 0) << st.err;
  json j = st.Json();
  ASSERT_TRUE(j.is_array() && !j.empty()) << st.out;
  const json& session = j[0]["sessions"][0];
  EXPECT_TRUE(session.contains("auto_stopped")) << session.dump();
  EXPECT_EQ(session["auto_stopped"], false);
  EXPECT_TRUE(session["max_bytes"].is_number()) << session.dump();
  EXPECT_EQ(session["run_id"], "");
  EXPECT_EQ(Labtrace({"cancel", "zeros", "--hosts", "vm0"}).exit_code, 0);
}

// `labtrace exec` prints the output as it arrives: "early" is on the
// terminal while the command still sleeps.
TEST_F(FleetTest, ExecStreamsOutputWhileTheCommandRuns) {
  subprocess::Options o;
  o.argv = {testing::ControllerBinary(), "--inventory", inventory_.string(),
            "exec", "ex_stream", "--hosts", "vm0,vm2", "--",
            "/bin/sh", "-c", "echo early; sleep 4; echo late"};
  o.output_cap = 1 << 20;
  subprocess::Process p;
  std::string error;
  ASSERT_TRUE(p.Start(o, &error)) << error;
  bool early_while_running = false;
  std::optional<subprocess::Result> r;
  for (int i = 0; i < 300 && !r; ++i) {  // 30 s at most.
    const std::string out = p.output();
    if (out.find("[vm2] early") != std::string::npos &&
        out.find("[vm0] early") != std::string::npos) {
      early_while_running = out.find("late") == std::string::npos;
      break;
    }
    r = p.Wait(std::chrono::milliseconds(100));
  }
  if (!r) r = p.Wait(std::chrono::seconds(60));
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(r->exit_code, 0) << r->output;
  EXPECT_TRUE(early_while_running) << r->output;
  EXPECT_THAT(r->output, HasSubstr("[vm0] late\n"));
  EXPECT_THAT(r->output, HasSubstr("[vm2] late\n"));
}

// `labtrace exec`: one command under its own trace; one host passes its
// exit code through, several print prefixed output; --collect fetches the
// trace and the log; JUnit from a run names every step and host.
TEST_F(FleetTest, ExecPassesTheExitCodeAndCollects) {
  const auto out = dir_->path() / "exec_out";
  CliResult one = Labtrace({"exec", "ex_one", "--hosts", "vm0", "--collect",
                            out.string(), "--run-id", "exrun", "--",
                            "/bin/sh", "-c", "echo hello from exec; exit 3"});
  EXPECT_EQ(one.exit_code, 3) << one.err << one.out;
  EXPECT_THAT(one.out, HasSubstr("hello from exec"));
  int etl = 0, log = 0;
  for (const auto& e : std::filesystem::directory_iterator(out / "exrun" / "vm0")) {
    etl += e.path().extension() == ".etl";
    log += e.path().extension() == ".log";
  }
  EXPECT_EQ(etl, 1);
  EXPECT_EQ(log, 1);

  CliResult many = Labtrace({"exec", "ex_many", "--hosts", "vm0,vm2", "--",
                             "/bin/sh", "-c", "echo hi"});
  EXPECT_EQ(many.exit_code, 0) << many.err;
  EXPECT_THAT(many.out, HasSubstr("[vm0] hi"));
  EXPECT_THAT(many.out, HasSubstr("[vm2] hi"));
  // vm1 does not allow commands: a clear failure, not a pass.
  CliResult refused = Labtrace({"exec", "ex_no", "--hosts", "vm1", "--",
                                "/bin/sh", "-c", "true"});
  EXPECT_EQ(refused.exit_code, 4) << refused.err;
  EXPECT_THAT(refused.err, HasSubstr("disabled"));
  CliResult usage = Labtrace({"exec", "ex_usage", "--hosts", "vm0"});
  EXPECT_EQ(usage.exit_code, 2);
  EXPECT_THAT(usage.err, HasSubstr("give the command after --"));
}

TEST_F(FleetTest, RunWritesJUnitWithTheTraceFilesAttached) {
  const auto plan = dir_->path() / "junit_plan.yaml";
  testing::WriteTextFile(plan, PlanFor("vm0,vm2"));
  const auto out = dir_->path() / "junit_runs";
  const auto junit = out / "junit.xml";
  CliResult r = Labtrace({"run", plan.string(), "--out", out.string(),
                          "--run-id", "ju", "--junit", junit.string()});
  EXPECT_EQ(r.exit_code, 4) << r.err;
  const std::string x = testing::ReadTextFile(junit);
  // 5 steps x 2 hosts; `failing` fails on both.
  EXPECT_THAT(x, HasSubstr("tests=\"10\" failures=\"2\" errors=\"0\""));
  EXPECT_THAT(x, HasSubstr("classname=\"test\" name=\"failing@vm0\""));
  EXPECT_THAT(x, HasSubstr("type=\"exit code 7\""));
  EXPECT_THAT(x, HasSubstr("broken"));  // The step's log in system-out.
  // Every attachment is a file of the run, relative to the JUnit file.
  int attachments = 0;
  for (std::size_t at = x.find("[[ATTACHMENT|"); at != std::string::npos;
       at = x.find("[[ATTACHMENT|", at + 1)) {
    const std::size_t end = x.find("]]", at);
    const std::string rel = x.substr(at + 13, end - at - 13);
    EXPECT_TRUE(std::filesystem::exists(out / rel)) << rel;
    ++attachments;
  }
  EXPECT_EQ(attachments, 2 * 9);  // Per host: 4 traces + 4 logs + 1 trace.
}

TEST_F(FleetTest, LostEventsCanFailARunAndInspectReportsThem) {
  const auto plan = dir_->path() / "plan_lost.yaml";
  testing::WriteTextFile(plan, R"yaml(
run: lost
hosts: vm4
defaults: {profile: general}
tests:
  - name: one
    command: [/bin/sh, -c, "true"]
)yaml");
  const auto out = dir_->path() / "runs_lost";
  CliResult ok = Labtrace(
      {"run", plan.string(), "--out", out.string(), "--run-id", "lost1"});
  EXPECT_EQ(ok.exit_code, 0) << ok.err;  // Warned, not failed.
  EXPECT_THAT(ok.out, HasSubstr("warning: one on vm4"));
  CliResult fail = Labtrace({"run", plan.string(), "--out", out.string(),
                             "--run-id", "lost2", "--fail-on-lost-events"});
  EXPECT_EQ(fail.exit_code, 5) << fail.err;
  // inspect reads the collected file locally.
  json m = json::parse(testing::ReadTextFile(out / "lost2" / "manifest.json"));
  std::string etl_file;
  for (const auto& f : m["files"]) {
    if (f["backend"] == "wpr")
      etl_file = (out / "lost2" / f["file"].get<std::string>()).string();
  }
  ASSERT_FALSE(etl_file.empty());
  CliResult in = Labtrace({"inspect", etl_file, "--json"});
  EXPECT_EQ(in.exit_code, 5);
  json j = in.Json();
  ASSERT_EQ(j.size(), 1u) << in.out;
  EXPECT_EQ(j[0]["summary"]["logger_name"], "WindowsUpdate_trace_log");
  EXPECT_EQ(j[0]["summary"]["events_lost"], 41);
  EXPECT_EQ(j[0]["summary"]["buffers_lost"], 0);  // Zeros are printed.
  // The provider breakdown (tests/common/etl_providers_known_answers.md):
  // every record belongs to one provider, largest first, in the summary's
  // top 10 and in inspect --providers.
  EXPECT_EQ(j[0]["summary"]["top_providers"][0]["name"], "WUTraceLogging");
  EXPECT_EQ(j[0]["summary"]["provider_count"], 2);
  CliResult prov = Labtrace({"inspect", etl_file, "--providers", "--json"});
  json pj = prov.Json();
  ASSERT_EQ(pj.size(), 1u) << prov.out;
  const json& list = pj[0]["providers"];
  ASSERT_EQ(list.size(), 2u) << prov.out;
  std::uint64_t events = 0, bytes = 0;
  for (const json& p : list) {
    events += p["events"].get<std::uint64_t>();
    bytes += p["bytes"].get<std::uint64_t>();
  }
  EXPECT_EQ(events, 82u);
  EXPECT_EQ(bytes, 23352u);
  EXPECT_EQ(pj[0]["summary"]["record_bytes"], 23352);
  EXPECT_EQ(list[0]["name"], "WUTraceLogging");
  EXPECT_EQ(list[0]["source"], "tracelogging");
  EXPECT_EQ(list[0]["events"], 80);
  EXPECT_EQ(list[1]["key"], "kernel:0x00");
  CliResult table = Labtrace({"inspect", etl_file, "--providers"});
  EXPECT_THAT(table.out, HasSubstr("WUTraceLogging"));
  EXPECT_THAT(table.out, HasSubstr("97.5%"));
  EXPECT_THAT(table.out, HasSubstr("lost: 41 events"));
  // A small file never draws the "narrow the profile" warning.
  EXPECT_THAT(table.err, Not(HasSubstr("narrow the profile")));
  CliResult missing = Labtrace({"inspect", "/nonexistent.etl"});
  EXPECT_EQ(missing.exit_code, 2);
}

TEST_F(FleetTest, PlanOnAHostSetWithTheDeadOnesAndKeepOnFailure) {
  const auto plan = dir_->path() / "plan_dead.yaml";
  testing::WriteTextFile(plan, PlanFor("vm0,gone", "  keep: on-failure\n"));
  const auto out = dir_->path() / "runs_dead";
  CliResult r = Labtrace(
      {"run", plan.string(), "--out", out.string(), "--run-id", "dead"});
  // `gone` is lost in setup: tests are skipped, cleanup runs on vm0.
  EXPECT_EQ(r.exit_code, 3) << r.err << r.out;
  json m = json::parse(testing::ReadTextFile(out / "dead" / "manifest.json"));
  EXPECT_EQ(m["lost_hosts"], json::array({"gone"}));
  std::map<std::string, bool> skipped;
  for (const auto& s : m["steps"]) skipped[s["name"]] = s["skipped"];
  EXPECT_TRUE(skipped["passing"]);
  EXPECT_FALSE(skipped["cleanup_env"]);
  // keep: on-failure deleted vm0's passed steps on the agent.
  EXPECT_FALSE(m["deleted_on_agents"].empty());
  EXPECT_TRUE(ArtifactsOf(0, "dead").empty());
}

TEST_F(FleetTest, StepCommandNotAllowedOrExecDisabled) {
  const auto plan = dir_->path() / "plan_denied.yaml";
  testing::WriteTextFile(plan, R"yaml(
run: denied
hosts: vm0,vm1
defaults: {profile: general}
tests:
  - name: not_allowed
    command: [/bin/echo, hi]
)yaml");
  CliResult r = Labtrace(
      {"run", plan.string(), "--out", (dir_->path() / "runs_denied").string()});
  EXPECT_EQ(r.exit_code, 4) << r.err;
  EXPECT_THAT(r.err, HasSubstr("not on this agent's allow-list"));  // vm0
  EXPECT_THAT(r.err, HasSubstr("disabled on this agent"));          // vm1
}

TEST_F(FleetTest, BadInventoryPlanAndHostsAreUsageErrors) {
  const auto bad_inv = dir_->path() / "bad_inventory.yaml";
  testing::WriteTextFile(
      bad_inv,
      "hosts:\n  - {name: a, address: x}\n  - {name: a, address: y}\n");
  subprocess::Options o;
  o.argv = {testing::ControllerBinary(), "info", "--inventory",
            bad_inv.string()};
  subprocess::Result r = subprocess::Run(o);
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_THAT(r.output, HasSubstr("bad_inventory.yaml:3"));

  CliResult unknown = Labtrace({"info", "--hosts", "vm0,nope"});
  EXPECT_EQ(unknown.exit_code, 2);
  EXPECT_THAT(unknown.err, HasSubstr("unknown host nope"));

  const auto bad_plan = dir_->path() / "bad_plan.yaml";
  testing::WriteTextFile(bad_plan,
                         "run: x\ntests:\n  - {name: a, comand: [x]}\n");
  CliResult p = Labtrace({"run", bad_plan.string(), "--out", "/tmp/x"});
  EXPECT_EQ(p.exit_code, 2);
  EXPECT_THAT(p.err, HasSubstr("bad_plan.yaml:3"));

  EXPECT_EQ(Labtrace({"frobnicate"}).exit_code, 2);
  EXPECT_EQ(Labtrace({"start"}).exit_code, 2);
  EXPECT_EQ(Labtrace({"info", "--bogus"}).exit_code, 2);
  CliResult help = Labtrace({"--help"});
  EXPECT_EQ(help.exit_code, 0);
  EXPECT_THAT(help.out, HasSubstr("Exit codes"));
}

TEST_F(FleetTest, ResumedDownloadIsVerified) {
  // A run id with one artifact on vm4.
  v1::StartTraceRequest req;
  req.set_name("resumable");
  req.set_profile("general");
  req.set_run_id("resume");
  v1::TraceSession s;
  ASSERT_TRUE(agents_[4]->stub().StartTrace(Ctx().get(), req, &s).ok());
  v1::StopTraceRequest stop;
  stop.set_name("resumable");
  v1::StopTraceResponse stopped;
  ASSERT_TRUE(agents_[4]->stub().StopTrace(Ctx().get(), stop, &stopped).ok());
  const v1::Artifact& a = stopped.artifact();
  const std::string whole = testing::ReadTextFile(etl_);

  // As if an earlier download died halfway: the first half in a .part.
  const auto out = dir_->path() / "resume_out";
  const auto host_dir = out / "resume" / "vm4";
  std::filesystem::create_directories(host_dir);
  testing::WriteTextFile(host_dir / (a.file_name() + ".part"),
                         whole.substr(0, whole.size() / 2));
  CliResult r = Labtrace(
      {"fetch", "--run", "resume", "--out", out.string(), "--hosts", "vm4"});
  EXPECT_EQ(r.exit_code, 0) << r.err << r.out;
  EXPECT_EQ(*Sha256File(host_dir / a.file_name()), a.sha256());
  EXPECT_FALSE(std::filesystem::exists(host_dir / (a.file_name() + ".part")));

  // A corrupt .part: the digest check catches it (exit 5), removes it, and
  // the next run starts over and succeeds.
  std::filesystem::remove(host_dir / a.file_name());
  std::string corrupt = whole.substr(0, whole.size() / 2);
  corrupt[100] ^= 0x5a;
  testing::WriteTextFile(host_dir / (a.file_name() + ".part"), corrupt);
  CliResult bad = Labtrace(
      {"fetch", "--run", "resume", "--out", out.string(), "--hosts", "vm4"});
  EXPECT_EQ(bad.exit_code, 5) << bad.err << bad.out;
  EXPECT_THAT(bad.out, HasSubstr("digest_mismatch"));
  CliResult good = Labtrace(
      {"fetch", "--run", "resume", "--out", out.string(), "--hosts", "vm4"});
  EXPECT_EQ(good.exit_code, 0) << good.err;
  EXPECT_EQ(*Sha256File(host_dir / a.file_name()), a.sha256());
}

TEST_F(FleetTest, CtrlCDuringARunStopsTracesRunsCleanupAndCollects) {
  const auto plan = dir_->path() / "plan_int.yaml";
  testing::WriteTextFile(plan, R"yaml(
run: interrupted
hosts: vm2,vm3
defaults: {profile: general, timeout: 60s, stop_timeout: 20s}
tests:
  - name: long_test
    command: [/bin/sleep, "60"]
  - name: never_runs
    command: [/bin/sh, -c, "echo no"]
cleanup:
  - name: cleanup_int
    command: [/bin/sh, -c, "echo cleanup ran"]
)yaml");
  const auto out = dir_->path() / "runs_int";
  subprocess::Options o;
  o.argv = {testing::ControllerBinary(),
            "run",
            plan.string(),
            "--out",
            out.string(),
            "--run-id",
            "ctrlc",
            "--inventory",
            inventory_.string()};
  o.output_cap = 1 << 20;
  subprocess::Process p;
  std::string error;
  ASSERT_TRUE(p.Start(o, &error)) << error;
  // Wait until the long step is running on both agents.
  ASSERT_TRUE(testing::WaitFor(
      [&] { return Active(2).size() == 1 && Active(3).size() == 1; },
      std::chrono::seconds(20)))
      << p.output();
  const auto start = std::chrono::steady_clock::now();
  ::kill(static_cast<pid_t>(p.pid()), SIGINT);
  std::optional<subprocess::Result> r = p.Wait(std::chrono::seconds(40));
  ASSERT_TRUE(r.has_value()) << "controller did not finish after Ctrl-C";
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(30));
  EXPECT_EQ(r->exit_code, 130) << r->output;
  EXPECT_THAT(r->output, HasSubstr("interrupted"));
  EXPECT_TRUE(Active(2).empty());
  EXPECT_TRUE(Active(3).empty());
  json m = json::parse(testing::ReadTextFile(out / "ctrlc" / "manifest.json"));
  EXPECT_TRUE(m["interrupted"]);
  std::map<std::string, json> steps;
  for (const auto& s : m["steps"]) steps[s["name"]] = s;
  EXPECT_TRUE(steps["never_runs"]["skipped"]);
  EXPECT_TRUE(steps["cleanup_int"]["passed"]);
  // The interrupted step's traces were kept and collected.
  int long_test_files = 0;
  for (const auto& f : m["files"]) {
    if (f["step"] == "long_test" && f["backend"] == "wpr") {
      EXPECT_EQ(f["status"], "collected");
      ++long_test_files;
    }
  }
  EXPECT_EQ(long_test_files, 2);
}

}  // namespace
}  // namespace labtrace

namespace labtrace {
namespace {

// A real interrupted download: the controller is killed (SIGKILL) in the
// middle of a 256 MiB fetch, then the same command is run again.
TEST(DownloadKillTest, KilledFetchResumesFromPartAndVerifies) {
  testing::TempDir dir;
  const auto big = dir.path() / "big.etl";
  {
    std::ofstream f(big, std::ios::binary);
    std::string block(1 << 20, '\0');
    for (int i = 0; i < 256; ++i) {
      block[0] = static_cast<char>(i);  // Not all zeros: a wrong offset shows.
      block[4096] = static_cast<char>(255 - i);
      f.write(block.data(), static_cast<std::streamsize>(block.size()));
    }
  }
  const auto state = dir.path() / "wpr";
  std::filesystem::create_directories(state);
  testing::AgentProcess agent(
      {dir.path() / "data",
       "wpr:\n  path: " + testing::FakeWprBinary() +
           "\nprofiles:\n  - {name: general, backend: wpr, args: [G]}\n",
       {"--log-level", "warn"},
       {"FAKE_WPR_STATE_DIR=" + state.string(),
        "FAKE_WPR_ETL_SOURCE=" + big.string()}});
  std::string error;
  ASSERT_TRUE(agent.Start(&error)) << error;
  v1::StartTraceRequest req;
  req.set_name("big");
  req.set_profile("general");
  req.set_run_id("bigrun");
  v1::TraceSession s;
  ASSERT_TRUE(agent.stub().StartTrace(Ctx().get(), req, &s).ok());
  v1::StopTraceRequest stop;
  stop.set_name("big");
  v1::StopTraceResponse stopped;
  ASSERT_TRUE(
      agent.stub()
          .StopTrace(Ctx(std::chrono::seconds(60)).get(), stop, &stopped)
          .ok());
  const v1::Artifact a = stopped.artifact();
  const auto inv = dir.path() / "inv.yaml";
  testing::WriteTextFile(
      inv, "hosts:\n  - {name: h, address: \"" + agent.address() + "\"}\n");
  const auto out = dir.path() / "out";
  const auto part = out / "bigrun" / "h" / (a.file_name() + ".part");
  subprocess::Options o;
  o.argv = {testing::ControllerBinary(),
            "fetch",
            "--run",
            "bigrun",
            "--out",
            out.string(),
            "--inventory",
            inv.string()};

  subprocess::Process first;
  ASSERT_TRUE(first.Start(o, &error)) << error;
  // Freeze it as soon as some bytes have landed, then kill it.
  ASSERT_TRUE(testing::WaitFor(
      [&] {
        std::error_code ec;
        return std::filesystem::file_size(part, ec) > 0 && !ec;
      },
      std::chrono::seconds(30)));
  ::kill(static_cast<pid_t>(first.pid()), SIGSTOP);
  std::error_code ec;
  const std::uint64_t at_kill = std::filesystem::file_size(part, ec);
  ::kill(static_cast<pid_t>(first.pid()), SIGKILL);
  first.Wait(std::chrono::seconds(10));
  if (ec || at_kill >= a.size_bytes()) {
    GTEST_SKIP()
        << "the whole file arrived before the controller could be stopped";
  }
  EXPECT_FALSE(std::filesystem::exists(out / "bigrun" / "h" / a.file_name()));

  o.argv.push_back("--json");
  subprocess::Result second = subprocess::Run(o);
  ASSERT_TRUE(second.ok()) << second.output;
  EXPECT_EQ(*Sha256File(out / "bigrun" / "h" / a.file_name()), a.sha256());
  EXPECT_FALSE(std::filesystem::exists(part));
  std::cout << "killed at " << at_kill << " of " << a.size_bytes()
            << " bytes; resumed\n";
}

}  // namespace
}  // namespace labtrace
