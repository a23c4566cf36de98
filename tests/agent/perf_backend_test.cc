#include "agent/backend/perf_backend.h"

#include <signal.h>

#include <atomic>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "common/file_util.h"
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
  PerfBackend b(c, "");
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
  PerfBackend b(c, "");
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
  PerfBackend b(PerfConfig{}, "");
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
  PerfBackend b(PerfConfig{}, "");
  testing::TempDir dir;
  auto s = b.Start(Request("bad", v1::TRACE_MODE_FILE, dir.path(),
                           {"-e", "no_such_event_xyz"}));
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.status().code(), absl::StatusCode::kInvalidArgument)
      << s.status();
  EXPECT_THAT(std::string(s.status().message()),
              HasSubstr("no_such_event_xyz"));
}

TEST(PerfBackendTest, CancelRemovesTheFile) {
  if (std::string why = testing::PerfUnavailableReason(); !why.empty())
    GTEST_SKIP() << why;
  testing::TempDir dir;
  PerfBackend b(PerfConfig{}, dir.path());
  auto s = b.Start(Request("c", v1::TRACE_MODE_FILE, dir.path(), {"-F", "99"}));
  ASSERT_TRUE(s.ok()) << s.status();
  EXPECT_TRUE((*s)->Cancel().ok());
  EXPECT_FALSE(std::filesystem::exists(dir.path() / "c.perf.data"));
}

// A perf that outlived the agent (its own process group survives a kill
// -9): Salvage finds it by pid and start id, stops it with SIGINT so that it
// finishes its file, and returns that file, which perf itself can read.
TEST(PerfBackendTest, SalvageStopsAPerfThatOutlivedTheAgent) {
  if (std::string why = testing::PerfUnavailableReason(); !why.empty())
    GTEST_SKIP() << why;
  testing::TempDir dir;
  PerfBackend b(PerfConfig{}, dir.path());
  const std::string out = PathToUtf8(dir.path() / "o.perf.data");
  subprocess::Options o;
  o.argv = {"perf", "record", "-a", "-F", "99", "-o", out};
  subprocess::Process orphan;
  std::string error;
  ASSERT_TRUE(orphan.Start(o, &error)) << error;
  // Let it record something.
  ASSERT_TRUE(testing::WaitFor(
      [&] {
        std::error_code ec;  // file_size is -1 (huge) on error.
        const auto size = std::filesystem::file_size(out, ec);
        return !ec && size > 4096;
      },
      std::chrono::seconds(20)));
  const std::string handle =
      absl::StrCat(orphan.pid(), " ", subprocess::ProcessStartId(orphan.pid()),
                   " ", out);
  absl::StatusOr<Salvaged> s =
      b.Salvage(JournaledRecording{"o", handle, dir.path(), v1::TRACE_MODE_FILE,
                                   false});
  ASSERT_TRUE(s.ok()) << s.status();
  EXPECT_THAT(s->note, HasSubstr("stopped with SIGINT"));
  EXPECT_THAT(s->note, HasSubstr("perf had finished the file"));
  EXPECT_TRUE(orphan.Wait(std::chrono::seconds(10)).has_value());
  subprocess::Options report;
  report.argv = {"perf", "report", "--stdio", "-i", out, "--header-only"};
  report.timeout = std::chrono::seconds(60);
  EXPECT_TRUE(subprocess::Run(report).ok());
}

// perf killed with SIGKILL (as when the machine loses power or someone
// kills it): its header was never finished. Salvage repairs the file from
// its records, and `perf script` reads the repaired file.
TEST(PerfBackendTest, SalvageRepairsAFilePerfCouldNotFinish) {
  if (std::string why = testing::PerfUnavailableReason(); !why.empty())
    GTEST_SKIP() << why;
  testing::TempDir dir;
  PerfBackend b(PerfConfig{}, dir.path());
  const std::string out = PathToUtf8(dir.path() / "k.perf.data");
  subprocess::Options o;
  o.argv = {"perf", "record", "-a", "-F", "999", "-o", out};
  o.kill_grace = std::chrono::milliseconds(0);
  subprocess::Process perf;
  std::string error;
  ASSERT_TRUE(perf.Start(o, &error)) << error;
  ASSERT_TRUE(testing::WaitFor(
      [&] {
        std::error_code ec;  // file_size is -1 (huge) on error.
        const auto size = std::filesystem::file_size(out, ec);
        return !ec && size > 64 * 1024;
      },
      std::chrono::seconds(30)));
  ::kill(static_cast<pid_t>(perf.pid()), SIGKILL);
  perf.Wait(std::chrono::seconds(10));
  absl::StatusOr<Salvaged> s = b.Salvage(JournaledRecording{
      "k", absl::StrCat(perf.pid(), " - ", out), dir.path(),
      v1::TRACE_MODE_FILE, false});
  ASSERT_TRUE(s.ok()) << s.status();
  EXPECT_THAT(s->note, HasSubstr("header was rebuilt from"));
  subprocess::Options script;
  script.argv = {"perf", "script", "-i", out};
  script.timeout = std::chrono::seconds(120);
  script.output_cap = 4096;
  subprocess::Result r = subprocess::Run(script);
  EXPECT_TRUE(r.ok()) << r.Describe() << r.output;
  // A handle whose pid is not perf writing that file is never signalled.
  EXPECT_FALSE(b.Salvage(JournaledRecording{"x",
                                            absl::StrCat(::getpid(), " ",
                                                         subprocess::ProcessStartId(::getpid()),
                                                         " /no/such/file"),
                                            dir.path(), v1::TRACE_MODE_FILE,
                                            false})
                   .ok());
}

// A perf that ends by itself (here: a bad event that fails after start is
// hard to provoke, so it is killed from outside) is reported at once with
// perf's words.
TEST(PerfBackendTest, APerfThatDiesIsReportedAtOnce) {
  if (std::string why = testing::PerfUnavailableReason(); !why.empty())
    GTEST_SKIP() << why;
  testing::TempDir dir;
  PerfBackend b(PerfConfig{}, dir.path());
  auto s = b.Start(Request("d", v1::TRACE_MODE_FILE, dir.path(), {"-F", "99"}));
  ASSERT_TRUE(s.ok()) << s.status();
  std::atomic<bool> ended{false};
  std::string why;
  absl::Mutex mu;
  (*s)->SetOnEnded([&](const std::string& w) {
    absl::MutexLock lock(&mu);
    why = w;
    ended = true;
  });
  const std::string handle = (*s)->RecoveryHandle();
  std::int64_t pid = 0;
  ASSERT_TRUE(absl::SimpleAtoi(handle.substr(0, handle.find(' ')), &pid));
  ::kill(static_cast<pid_t>(pid), SIGKILL);
  ASSERT_TRUE(testing::WaitFor([&] { return ended.load(); },
                               std::chrono::seconds(10)));
  absl::MutexLock lock(&mu);
  EXPECT_THAT(why, HasSubstr("ended on its own"));
  EXPECT_THAT(why, HasSubstr("signal 9"));
}

}  // namespace
}  // namespace labtrace::agent
