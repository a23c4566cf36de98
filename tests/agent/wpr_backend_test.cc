#include "agent/backend/wpr_backend.h"

#include "common/file_util.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/testing/test_util.h"

namespace labtrace::agent {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

subprocess::Result Exited(int code, std::string output) {
  subprocess::Result r;
  r.outcome = subprocess::Outcome::kExited;
  r.exit_code = code;
  r.output = std::move(output);
  return r;
}

BackendStartRequest Request(const std::string& name, v1::TraceMode mode,
                            const std::filesystem::path& work_dir,
                            std::vector<std::string> profiles = {
                                "GeneralProfile"}) {
  BackendStartRequest r;
  r.session_name = name;
  r.profile.name = "p";
  r.profile.backend = "wpr";
  r.profile.args = std::move(profiles);
  r.mode = mode;
  r.work_dir = work_dir;
  return r;
}

TEST(WprCommandLineTest, StartStopCancelStatus) {
  WprBackendOptions o;
  o.config.path = "wpr.exe";
  o.embedded_profiles_dir = "/data/profiles";
  WprBackend b(o);
  EXPECT_THAT(b.StartArgv(Request(
                  "unit_tests", v1::TRACE_MODE_FILE, "/w",
                  {"GeneralProfile", "embedded:labtrace.wprp!Labtrace"})),
              ElementsAre("wpr.exe", "-start", "GeneralProfile", "-start",
                          PathToUtf8(std::filesystem::path("/data/profiles") /
                                     "labtrace.wprp!Labtrace"),
                          "-filemode",
                          "-recordtempto", "/w", "-instancename",
                          "labtrace_unit_tests"));
  EXPECT_THAT(b.StartArgv(Request("m", v1::TRACE_MODE_MEMORY, "/w")),
              ElementsAre("wpr.exe", "-start", "GeneralProfile",
                          "-instancename", "labtrace_m"));
  EXPECT_THAT(
      b.StopArgv("unit_tests", "/w/unit_tests.etl"),
      ElementsAre("wpr.exe", "-stop", "/w/unit_tests.etl", "-skipPdbGen",
                  "-instancename", "labtrace_unit_tests"));
  EXPECT_THAT(b.CancelArgv("x"),
              ElementsAre("wpr.exe", "-cancel", "-instancename", "labtrace_x"));
  EXPECT_THAT(b.StatusArgv("x"),
              ElementsAre("wpr.exe", "-status", "-instancename", "labtrace_x"));
  o.config.skip_pdb_gen = false;
  WprBackend no_skip(o);
  EXPECT_THAT(
      no_skip.StopArgv("a", "/o.etl"),
      ElementsAre("wpr.exe", "-stop", "/o.etl", "-instancename", "labtrace_a"));
}

TEST(WprErrorTest, ParsesHresultFromOutputOrExitCode) {
  EXPECT_EQ(ParseWprHresult(Exited(4,
                                   "\tThere are no trace profiles "
                                   "running.\n\nError code: 0xc5583000\n")),
            kWprNoProfilesRunning);
  EXPECT_EQ(ParseWprHresult(Exited(1, "Error Code: 0xC5580701")),
            kWprInvalidProfileSchema);
  // Windows: the exit code is the HRESULT.
  EXPECT_EQ(ParseWprHresult(Exited(static_cast<int>(0x800705AAu), "")),
            kWprTooManySessions);
  EXPECT_EQ(ParseWprHresult(Exited(1, "something odd")), std::nullopt);
  EXPECT_EQ(ParseWprHresult(Exited(0, "")), std::nullopt);
}

TEST(WprErrorTest, MapsKnownFailuresToPreciseCodes) {
  struct Case {
    std::uint32_t hr;
    absl::StatusCode code;
  } cases[] = {
      {kWprNoProfilesRunning, absl::StatusCode::kFailedPrecondition},
      {kWprAlreadyRunning, absl::StatusCode::kAlreadyExists},
      {kWprInvalidProfileSchema, absl::StatusCode::kInvalidArgument},
      {kWprTooManySessions, absl::StatusCode::kResourceExhausted},
      {0x80004005, absl::StatusCode::kInternal},
  };
  for (const Case& c : cases) {
    char text[64];
    std::snprintf(text, sizeof(text), "Some words.\nError code: 0x%08x\n",
                  c.hr);
    absl::Status s = WprResultToStatus("-start", "labtrace_x", Exited(3, text));
    EXPECT_EQ(s.code(), c.code) << s;
    EXPECT_THAT(std::string(s.message()), HasSubstr("labtrace_x"));
    EXPECT_THAT(std::string(s.message()), HasSubstr("exited with code 3"));
    EXPECT_THAT(std::string(s.message()), HasSubstr("Some words."));
  }
  subprocess::Result timeout;
  timeout.outcome = subprocess::Outcome::kTimedOut;
  timeout.elapsed = std::chrono::milliseconds(60000);
  EXPECT_EQ(WprResultToStatus("-stop", "i", timeout).code(),
            absl::StatusCode::kAborted);
  subprocess::Result missing;
  missing.outcome = subprocess::Outcome::kSpawnFailed;
  missing.error = "executable not found: wpr.exe";
  absl::Status s = WprResultToStatus("-start", "i", missing);
  EXPECT_EQ(s.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(std::string(s.message()), HasSubstr("wpr.exe"));
  EXPECT_TRUE(WprResultToStatus("-start", "i", Exited(0, "")).ok());
}

// Runs the backend against tests/tools/fake_wpr.
class WprBackendFakeTest : public ::testing::Test {
 protected:
  void SetUp() override {
    etl_ = testing::TestdataEtl("krabsetw_powershell.etl");
    if (etl_.empty())
      GTEST_SKIP() << "../shared/testdata/etl is not beside this checkout";
    std::filesystem::create_directories(state_dir());
    testing::SetEnv("FAKE_WPR_STATE_DIR", PathToUtf8(state_dir()));
    testing::SetEnv("FAKE_WPR_ETL_SOURCE", PathToUtf8(etl_));
    WprBackendOptions o;
    o.config.path = testing::FakeWprBinary();
    o.config.stop_timeout = absl::Seconds(10);
    o.embedded_profiles_dir = dir_.path() / "profiles";
    backend_ = std::make_unique<WprBackend>(o);
  }
  void TearDown() override {
    testing::UnsetEnv("FAKE_WPR_STATE_DIR");
    testing::UnsetEnv("FAKE_WPR_ETL_SOURCE");
  }
  std::filesystem::path state_dir() const { return dir_.path() / "wpr_state"; }
  std::filesystem::path WorkDir(const std::string& name) {
    auto p = dir_.path() / "work" / name;
    std::filesystem::create_directories(p);
    return p;
  }
  void Control(const std::string& text) {
    testing::WriteTextFile(state_dir() / "control.env", text);
  }
  std::string Calls() {
    return testing::ReadTextFile(state_dir() / "calls.log");
  }

  testing::TempDir dir_;
  std::filesystem::path etl_;
  std::unique_ptr<WprBackend> backend_;
};

TEST_F(WprBackendFakeTest, StartStopWritesTheEtl) {
  std::string detail;
  ASSERT_TRUE(backend_->CheckAvailable(&detail).ok());
  auto session =
      backend_->Start(Request("unit_tests", v1::TRACE_MODE_FILE, WorkDir("u")));
  ASSERT_TRUE(session.ok()) << session.status();
  EXPECT_EQ((*session)->RecoveryHandle(), "labtrace_unit_tests");
  auto file = (*session)->Stop();
  ASSERT_TRUE(file.ok()) << file.status();
  EXPECT_EQ(*Sha256File(*file), *Sha256File(etl_));
  EXPECT_THAT(Calls(),
              HasSubstr("-start GeneralProfile -filemode -recordtempto "));
  EXPECT_THAT(Calls(),
              HasSubstr("-skipPdbGen -instancename labtrace_unit_tests"));
}

TEST_F(WprBackendFakeTest, StartOfRunningInstanceIsAlreadyExists) {
  auto a = backend_->Start(Request("dup", v1::TRACE_MODE_MEMORY, WorkDir("a")));
  ASSERT_TRUE(a.ok());
  auto b = backend_->Start(Request("dup", v1::TRACE_MODE_MEMORY, WorkDir("b")));
  EXPECT_EQ(b.status().code(), absl::StatusCode::kAlreadyExists) << b.status();
  EXPECT_THAT(std::string(b.status().message()), HasSubstr("0xc5583001"));
  EXPECT_TRUE((*a)->Cancel().ok());
}

TEST_F(WprBackendFakeTest, StopOfVanishedInstanceIsFailedPrecondition) {
  auto a = backend_->Start(Request("gone", v1::TRACE_MODE_FILE, WorkDir("g")));
  ASSERT_TRUE(a.ok());
  // Someone else cancelled it behind our back.
  ASSERT_TRUE(
      backend_->RunWpr(backend_->CancelArgv("gone"), absl::Seconds(10)).ok());
  auto file = (*a)->Stop();
  EXPECT_EQ(file.status().code(), absl::StatusCode::kFailedPrecondition)
      << file.status();
  EXPECT_THAT(std::string(file.status().message()),
              HasSubstr("There are no trace profiles running"));
  // Cancelling an instance that is already gone is fine.
  EXPECT_TRUE((*a)->Cancel().ok());
}

TEST_F(WprBackendFakeTest, InvalidProfileAndTooManySessions) {
  auto bad = backend_->Start(
      Request("bad", v1::TRACE_MODE_FILE, WorkDir("x"), {"invalid.wprp!X"}));
  EXPECT_EQ(bad.status().code(), absl::StatusCode::kInvalidArgument)
      << bad.status();
  Control("FAKE_WPR_MAX_INSTANCES=1\n");
  auto one = backend_->Start(Request("one", v1::TRACE_MODE_FILE, WorkDir("1")));
  ASSERT_TRUE(one.ok());
  auto two = backend_->Start(Request("two", v1::TRACE_MODE_FILE, WorkDir("2")));
  EXPECT_EQ(two.status().code(), absl::StatusCode::kResourceExhausted)
      << two.status();
  EXPECT_THAT(std::string(two.status().message()), HasSubstr("0x800705aa"));
  EXPECT_TRUE((*one)->Cancel().ok());
}

TEST_F(WprBackendFakeTest, StopTimeoutCancelsTheInstance) {
  WprBackendOptions o = backend_->options();
  o.config.stop_timeout = absl::Milliseconds(300);
  WprBackend fast(o);
  auto s = fast.Start(Request("slow", v1::TRACE_MODE_FILE, WorkDir("s")));
  ASSERT_TRUE(s.ok());
  Control("FAKE_WPR_STOP_DELAY_MS=20000\nFAKE_WPR_IGNORE_SIGTERM=1\n");
  const auto start = std::chrono::steady_clock::now();
  auto file = (*s)->Stop();
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(10));
  EXPECT_EQ(file.status().code(), absl::StatusCode::kAborted)
      << file.status();
  EXPECT_THAT(std::string(file.status().message()),
              HasSubstr("wpr -cancel succeeded"));
  // The instance is gone: status says not recording.
  Control("");
  auto status = fast.RunWpr(fast.StatusArgv("slow"), absl::Seconds(10));
  EXPECT_THAT(status.output, HasSubstr("not recording"));
}

TEST_F(WprBackendFakeTest, StopFailureCarriesWprWords) {
  auto s = backend_->Start(Request("sf", v1::TRACE_MODE_FILE, WorkDir("sf")));
  ASSERT_TRUE(s.ok());
  // What real wpr -stop reported in WebView2Feedback#4255 (NGEN PDBs).
  Control("FAKE_WPR_STOP_FAIL_HRESULT=0x80010106\n");
  auto file = (*s)->Stop();
  EXPECT_EQ(file.status().code(), absl::StatusCode::kInternal);
  EXPECT_THAT(std::string(file.status().message()),
              HasSubstr("Cannot change thread mode after it is set"));
  EXPECT_THAT(std::string(file.status().message()), HasSubstr("0x80010106"));
  Control("");
  EXPECT_TRUE((*s)->Cancel().ok());
}

TEST_F(WprBackendFakeTest, MissingExecutable) {
  WprBackendOptions o;
  o.config.path = "/nonexistent/wpr.exe";
  WprBackend missing(o);
  EXPECT_EQ(missing.CheckAvailable(nullptr).code(),
            absl::StatusCode::kFailedPrecondition);
  auto s = missing.Start(Request("m", v1::TRACE_MODE_FILE, WorkDir("m")));
  EXPECT_EQ(s.status().code(), absl::StatusCode::kFailedPrecondition)
      << s.status();
}

TEST_F(WprBackendFakeTest, SalvageStopsAnInstanceThatOutlivedTheAgent) {
  auto a = backend_->Start(Request("orphan", v1::TRACE_MODE_FILE, WorkDir("o")));
  ASSERT_TRUE(a.ok());
  // A restarted agent: the instance still records.
  absl::StatusOr<Salvaged> s = backend_->Salvage(JournaledRecording{
      "orphan", "labtrace_orphan", WorkDir("o"), v1::TRACE_MODE_FILE, false});
  ASSERT_TRUE(s.ok()) << s.status();
  EXPECT_THAT(s->note, HasSubstr("outlived the agent"));
  EXPECT_EQ(*Sha256File(s->file), *Sha256File(etl_));
  EXPECT_THAT(
      backend_->RunWpr(backend_->StatusArgv("orphan"), absl::Seconds(5)).output,
      HasSubstr("not recording"));
  // Nothing running and no file: nothing to keep, and it says so.
  absl::StatusOr<Salvaged> none = backend_->Salvage(JournaledRecording{
      "orphan", "labtrace_orphan", WorkDir("empty"), v1::TRACE_MODE_FILE, false});
  EXPECT_EQ(none.status().code(), absl::StatusCode::kNotFound);
}

TEST_F(WprBackendFakeTest, SalvageKeepsTheFileOfAStopThatFinished) {
  // The agent died while wpr -stop ran; wpr finished without it.
  auto a = backend_->Start(Request("late", v1::TRACE_MODE_FILE, WorkDir("l")));
  ASSERT_TRUE(a.ok());
  ASSERT_TRUE(backend_
                  ->RunWpr(backend_->StopArgv("late", WorkDir("l") / "late.etl"),
                           absl::Seconds(10))
                  .ok());
  absl::StatusOr<Salvaged> s = backend_->Salvage(JournaledRecording{
      "late", "labtrace_late", WorkDir("l"), v1::TRACE_MODE_FILE, true});
  ASSERT_TRUE(s.ok()) << s.status();
  EXPECT_THAT(s->note, HasSubstr("had finished writing"));
}

TEST_F(WprBackendFakeTest, FailedStopCancelsTheInstance) {
  auto s = backend_->Start(Request("full", v1::TRACE_MODE_FILE, WorkDir("f")));
  ASSERT_TRUE(s.ok());
  // Disk full while merging: wpr's words, then the instance is cancelled.
  Control("FAKE_WPR_STOP_FAIL_HRESULT=0x80070070\n");
  auto file = (*s)->Stop();
  ASSERT_FALSE(file.ok());
  EXPECT_THAT(std::string(file.status().message()),
              HasSubstr("There is not enough space on the disk"));
  EXPECT_THAT(std::string(file.status().message()),
              HasSubstr("then wpr -cancel succeeded"));
  EXPECT_FALSE((*s)->StillRecording());
  Control("");
  EXPECT_THAT(
      backend_->RunWpr(backend_->StatusArgv("full"), absl::Seconds(5)).output,
      HasSubstr("not recording"));
}

TEST_F(WprBackendFakeTest, AStopWhoseCancelAlsoFailsIsStillRecording) {
  auto s = backend_->Start(Request("stuck", v1::TRACE_MODE_FILE, WorkDir("s")));
  ASSERT_TRUE(s.ok());
  // -stop fails; -cancel takes longer than the agent allows.
  WprBackendOptions o = backend_->options();
  o.config.cancel_timeout = absl::Milliseconds(300);
  WprBackend impatient(o);
  auto t = impatient.Start(Request("stuck2", v1::TRACE_MODE_FILE, WorkDir("s2")));
  ASSERT_TRUE(t.ok());
  Control("FAKE_WPR_STOP_FAIL_HRESULT=0x80010106\nFAKE_WPR_CANCEL_DELAY_MS=5000\n");
  EXPECT_FALSE((*t)->Stop().ok());
  EXPECT_TRUE((*t)->StillRecording());
  Control("");
  EXPECT_TRUE((*t)->Cancel().ok());
  EXPECT_FALSE((*t)->StillRecording());
  EXPECT_TRUE((*s)->Cancel().ok());
}

TEST(WprEtwSessionNamesTest, FindsLabtraceInstances) {
  EXPECT_THAT(LabtraceInstancesOfEtwSession(
                  "WPR_initiated_labtrace_unit_tests_WPR System Collector"),
              ElementsAre("labtrace_unit_tests"));
  EXPECT_THAT(LabtraceInstancesOfEtwSession(
                  "WPR_initiated_labtrace_a_labtrace System Collector"),
              ElementsAre("labtrace_a"));
  // An unknown collector name: every prefix that could be the instance.
  EXPECT_THAT(LabtraceInstancesOfEtwSession(
                  "WPR_initiated_labtrace_x_y_Custom Collector"),
              ElementsAre("labtrace_x", "labtrace_x_y"));
  EXPECT_TRUE(LabtraceInstancesOfEtwSession(
                  "WPR_initiated_WprApp_WPR System Collector")
                  .empty());
  EXPECT_TRUE(LabtraceInstancesOfEtwSession("NT Kernel Logger").empty());
  EXPECT_TRUE(LabtraceInstancesOfEtwSession("labtrace_x").empty());
}

TEST_F(WprBackendFakeTest, CleanupUnjournaledCancelsOnlyOurInstances) {
  // Two instances a crashed agent left running, and one of someone else.
  auto lost = backend_->Start(
      Request("lost_one", v1::TRACE_MODE_FILE, WorkDir("l")));
  ASSERT_TRUE(lost.ok()) << lost.status();
  ASSERT_TRUE(backend_
                  ->RunWpr({testing::FakeWprBinary(), "-start",
                            "GeneralProfile", "-instancename", "WprApp"},
                           absl::Seconds(10))
                  .ok());
  WprBackendOptions o = backend_->options();
  o.list_etw_sessions = [] {
    return std::vector<std::string>{
        "WPR_initiated_labtrace_lost_one_WPR System Collector",
        "WPR_initiated_labtrace_lost_one_WPR Event Collector",
        "WPR_initiated_labtrace_gone_WPR System Collector",  // Not running.
        "WPR_initiated_WprApp_WPR System Collector", "NT Kernel Logger"};
  };
  WprBackend restarted(o);
  std::vector<std::string> lines = restarted.CleanupUnjournaled();
  ASSERT_EQ(lines.size(), 1u) << ::testing::PrintToString(lines);
  EXPECT_THAT(lines[0], HasSubstr("cancelled WPR instance labtrace_lost_one"));
  EXPECT_THAT(
      restarted.RunWpr(restarted.StatusArgv("lost_one"), absl::Seconds(5))
          .output,
      HasSubstr("not recording"));
  // Not ours: untouched.
  EXPECT_THAT(restarted
                  .RunWpr({testing::FakeWprBinary(), "-status",
                           "-instancename", "WprApp"},
                          absl::Seconds(5))
                  .output,
              HasSubstr("recording is in progress"));
  // Switched off: nothing is touched.
  o.config.cancel_unjournaled = false;
  EXPECT_TRUE(WprBackend(o).CleanupUnjournaled().empty());
  // The lister failing is reported, not fatal.
  o.config.cancel_unjournaled = true;
  o.list_etw_sessions = []() -> absl::StatusOr<std::vector<std::string>> {
    return absl::PermissionDeniedError("access denied");
  };
  lines = WprBackend(o).CleanupUnjournaled();
  ASSERT_EQ(lines.size(), 1u);
  EXPECT_THAT(lines[0], HasSubstr("access denied"));
}

TEST_F(WprBackendFakeTest, NotElevatedIsPermissionDeniedWithAHint) {
  Control("FAKE_WPR_START_FAIL_HRESULT=0xc5585011\n");
  auto s = backend_->Start(Request("e", v1::TRACE_MODE_FILE, WorkDir("e")));
  EXPECT_EQ(s.status().code(), absl::StatusCode::kPermissionDenied)
      << s.status();
  EXPECT_THAT(std::string(s.status().message()),
              HasSubstr("Failed to enable the policy to profile system "
                        "performance"));
  EXPECT_THAT(std::string(s.status().message()), HasSubstr("administrator"));
}

TEST_F(WprBackendFakeTest, MissingProfileFileIsNamed) {
  auto s = backend_->Start(Request("m", v1::TRACE_MODE_FILE, WorkDir("m"),
                                   {"C:/no/such.wprp!Profile"}));
  ASSERT_FALSE(s.ok());
  EXPECT_THAT(std::string(s.status().message()), HasSubstr("such.wprp"));
  EXPECT_THAT(std::string(s.status().message()), HasSubstr("0x80070002"));
}

}  // namespace
}  // namespace labtrace::agent
