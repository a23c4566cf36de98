#include "agent/backend/perf_backend.h"

#include "common/subprocess.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/testing/test_util.h"

namespace labtrace::agent {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

BackendStartRequest Request(const std::string& name, v1::TraceMode mode,
                            const std::filesystem::path& dir,
                            std::vector<std::string> args) {
  BackendStartRequest r;
  r.session_name = name;
  r.profile.name = "p";
  r.profile.backend = "perf";
  r.profile.args = std::move(args);
  r.mode = mode;
  r.work_dir = dir;
  return r;
}

TEST(PerfBackendTest, RecordArgv) {
  PerfConfig c;
  c.memory_mode_pages = 256;
  PerfBackend b(c);
  EXPECT_THAT(b.RecordArgv(Request("cpu1", v1::TRACE_MODE_FILE, "/w",
                                   {"-F", "99", "-g"})),
              ElementsAre("perf", "record", "-a", "-o", "/w/cpu1.perf.data",
                          "-F", "99", "-g"));
  EXPECT_THAT(b.RecordArgv(Request("m", v1::TRACE_MODE_MEMORY, "/w", {"-g"})),
              ElementsAre("perf", "record", "-a", "-o", "/w/m.perf.data",
                          "--overwrite", "-m", "256", "-g"));
}

TEST(PerfBackendTest, MissingPerf) {
  PerfConfig c;
  c.path = "/nonexistent/perf";
  PerfBackend b(c);
  testing::TempDir dir;
  EXPECT_EQ(b.CheckAvailable(nullptr).code(),
            absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(b.Start(Request("x", v1::TRACE_MODE_FILE, dir.path(), {}))
                .status()
                .code(),
            absl::StatusCode::kFailedPrecondition);
}

TEST(PerfBackendTest, RealRecordingFileAndMemoryMode) {
  if (std::string why = testing::PerfUnavailableReason(); !why.empty())
    GTEST_SKIP() << why;
  PerfBackend b(PerfConfig{});
  testing::TempDir dir;
  for (v1::TraceMode mode : {v1::TRACE_MODE_FILE, v1::TRACE_MODE_MEMORY}) {
    auto s = b.Start(Request("cpu", mode, dir.path(), {"-F", "999", "-g"}));
    ASSERT_TRUE(s.ok()) << s.status();
    // Some load to sample.
    subprocess::Options load;
    load.argv = {"/bin/sh", "-c",
                 "i=0; while [ $i -lt 20000 ]; do i=$((i+1)); done"};
    ASSERT_TRUE(subprocess::Run(load).ok());
    auto file = (*s)->Stop();
    ASSERT_TRUE(file.ok()) << file.status();
    subprocess::Options report;
    report.argv = {"perf",         "report",  "-i",
                   file->string(), "--stdio", "--header-only"};
    report.timeout = std::chrono::seconds(60);
    subprocess::Result r = subprocess::Run(report);
    EXPECT_TRUE(r.ok()) << r.Describe() << r.output;
    EXPECT_THAT(r.output, HasSubstr("captured on"));
    std::filesystem::remove(*file);
  }
}

TEST(PerfBackendTest, BadEventFailsFastWithPerfsWords) {
  if (std::string why = testing::PerfUnavailableReason(); !why.empty())
    GTEST_SKIP() << why;
  PerfBackend b(PerfConfig{});
  testing::TempDir dir;
  auto s = b.Start(Request("bad", v1::TRACE_MODE_FILE, dir.path(),
                           {"-e", "no_such_event_xyz"}));
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.status().code(), absl::StatusCode::kInvalidArgument)
      << s.status();
  EXPECT_THAT(std::string(s.status().message()),
              HasSubstr("no_such_event_xyz"));
}

TEST(PerfBackendTest, CancelRemovesTheFileAndOrphanCleanupKillsPerf) {
  if (std::string why = testing::PerfUnavailableReason(); !why.empty())
    GTEST_SKIP() << why;
  PerfBackend b(PerfConfig{});
  testing::TempDir dir;
  auto s = b.Start(Request("c", v1::TRACE_MODE_FILE, dir.path(), {"-F", "99"}));
  ASSERT_TRUE(s.ok()) << s.status();
  EXPECT_TRUE((*s)->Cancel().ok());
  EXPECT_FALSE(std::filesystem::exists(dir.path() / "c.perf.data"));

  // An orphan, as a crashed agent leaves one: a perf process known to
  // CleanupOrphan only by its handle. (This Process reaps it afterwards.)
  subprocess::Options o;
  const std::string out = (dir.path() / "o.perf.data").string();
  o.argv = {"perf", "record", "-a", "-F", "99", "-o", out};
  subprocess::Process orphan;
  std::string error;
  ASSERT_TRUE(orphan.Start(o, &error)) << error;
  EXPECT_TRUE(
      b.CleanupOrphan("o", std::to_string(orphan.pid()) + " " + out).ok());
  EXPECT_TRUE(orphan.Wait(std::chrono::seconds(10)).has_value())
      << "perf not killed";
  // A handle whose pid is not perf writing that file is left alone.
  EXPECT_TRUE(
      b.CleanupOrphan("o", std::to_string(::getpid()) + " /no/such/file").ok());
}

}  // namespace
}  // namespace labtrace::agent
