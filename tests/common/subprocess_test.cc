#include "common/subprocess.h"

#include <signal.h>

#include <chrono>
#include <thread>

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "gtest/gtest.h"
#include "tests/testing/test_util.h"

namespace labtrace::subprocess {
namespace {

using std::chrono::milliseconds;
using std::chrono::seconds;

Options Sh(const std::string& script) {
  Options o;
  o.argv = {"/bin/sh", "-c", script};
  return o;
}

TEST(SubprocessTest, CapturesExitCodeAndOutput) {
  Result r = subprocess::Run(Sh("echo out; echo err >&2; exit 3"));
  EXPECT_EQ(r.outcome, Outcome::kExited);
  EXPECT_EQ(r.exit_code, 3);
  EXPECT_NE(r.output.find("out\n"), std::string::npos);
  EXPECT_NE(r.output.find("err\n"), std::string::npos);
  EXPECT_FALSE(r.output_truncated);
  EXPECT_FALSE(r.ok());
  EXPECT_EQ(r.Describe(), "exited with code 3");
}

TEST(SubprocessTest, ArgvIsNotShellInterpreted) {
  Options o;
  o.argv = {"/bin/echo", "a b", "$HOME", "`id`", ";", "'q'"};
  Result r = subprocess::Run(o);
  ASSERT_TRUE(r.ok()) << r.Describe();
  EXPECT_EQ(r.output, "a b $HOME `id` ; 'q'\n");
}

TEST(SubprocessTest, FindsProgramsInPath) {
  Options o;
  o.argv = {"true"};
  EXPECT_TRUE(subprocess::Run(o).ok());
  EXPECT_FALSE(FindProgram("sh").empty());
  EXPECT_TRUE(FindProgram("labtrace-no-such-program").empty());
}

TEST(SubprocessTest, MissingProgramIsSpawnFailure) {
  Options o;
  o.argv = {"/nonexistent/program", "x"};
  Result r = subprocess::Run(o);
  EXPECT_EQ(r.outcome, Outcome::kSpawnFailed);
  EXPECT_NE(r.error.find("/nonexistent/program"), std::string::npos) << r.error;
  EXPECT_NE(r.Describe().find("failed to start"), std::string::npos);
}

TEST(SubprocessTest, ExecFailureOfNonExecutableFile) {
  testing::TempDir dir;
  auto script = dir.path() / "not_exec";
  testing::WriteTextFile(script, "#!/bin/sh\necho hi\n");
  Options o;
  o.argv = {script.string()};
  Result r = subprocess::Run(o);
  EXPECT_EQ(r.outcome, Outcome::kSpawnFailed);
}

TEST(SubprocessTest, TimeoutKillsProcessAndItsChildren) {
  testing::TempDir dir;
  const auto marker = dir.path() / "grandchild_alive";
  // The grandchild would create the marker after 2 s unless killed with the
  // group. It writes its pid first, so the test can wait for it to be gone
  // instead of sleeping past its 2 s.
  const auto pid_file = dir.path() / "grandchild_pid";
  Options o = Sh("(echo $(exec sh -c 'echo $PPID') > " + pid_file.string() +
                 "; sleep 2; touch " + marker.string() + ") & sleep 30");
  o.timeout = milliseconds(300);
  o.kill_grace = milliseconds(200);
  const auto start = std::chrono::steady_clock::now();
  Result r = subprocess::Run(o);
  const auto took = std::chrono::steady_clock::now() - start;
  EXPECT_EQ(r.outcome, Outcome::kTimedOut);
  EXPECT_LT(took, seconds(10));
  std::int64_t grandchild = 0;
  ASSERT_TRUE(testing::WaitFor([&] {
    return absl::SimpleAtoi(
        absl::StripAsciiWhitespace(testing::ReadTextFile(pid_file)), &grandchild);
  }));
  // Gone: not a zombie of ours, so it no longer exists at all.
  EXPECT_TRUE(testing::WaitFor(
      [&] { return !subprocess::ProcessExists(grandchild); }, seconds(5)))
      << "grandchild " << grandchild << " survived the kill";
  EXPECT_FALSE(std::filesystem::exists(marker));
  EXPECT_NE(r.Describe().find("timed out"), std::string::npos);
}

TEST(SubprocessTest, KillEscalatesWhenSigtermIsIgnored) {
  Options o = Sh("trap '' TERM; echo ready; sleep 30");
  o.kill_grace = milliseconds(200);
  Process p;
  std::string error;
  ASSERT_TRUE(p.Start(o, &error)) << error;
  ASSERT_TRUE(testing::WaitFor(
      [&] { return p.output().find("ready") != std::string::npos; }));
  Result r = p.Kill();
  EXPECT_EQ(r.outcome, Outcome::kSignaled);
  EXPECT_EQ(r.term_signal, SIGKILL);
  EXPECT_FALSE(p.running());
}

TEST(SubprocessTest, OutputCapKeepsTheTail) {
  Options o =
      Sh("i=0; while [ $i -lt 2000 ]; do echo line$i; i=$((i+1)); done");
  o.output_cap = 100;
  Result r = subprocess::Run(o);
  ASSERT_TRUE(r.ok());
  EXPECT_TRUE(r.output_truncated);
  EXPECT_EQ(r.output.size(), 100u);
  EXPECT_NE(r.output.find("line1999\n"), std::string::npos);
}

TEST(SubprocessTest, LargeOutputDoesNotBlockTheChild) {
  // 4 MiB through a pipe whose buffer is 64 KiB: the reader must drain it.
  Options o = Sh("head -c 4194304 /dev/zero");
  o.timeout = seconds(20);
  o.output_cap = 1024;
  Result r = subprocess::Run(o);
  EXPECT_TRUE(r.ok()) << r.Describe();
  EXPECT_TRUE(r.output_truncated);
}

TEST(SubprocessTest, InterruptDeliversSigint) {
  Process p;
  std::string error;
  ASSERT_TRUE(p.Start(Sh("trap 'echo got-int; exit 7' INT; echo ready; while "
                         ":; do sleep 0.05; done"),
                      &error))
      << error;
  ASSERT_TRUE(testing::WaitFor(
      [&] { return p.output().find("ready") != std::string::npos; }));
  ASSERT_TRUE(p.Interrupt());
  std::optional<Result> r = p.Wait(seconds(10));
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(r->exit_code, 7);
  EXPECT_NE(r->output.find("got-int"), std::string::npos);
}

TEST(SubprocessTest, WaitWithTimeoutReturnsNulloptWhileRunning) {
  Process p;
  std::string error;
  ASSERT_TRUE(p.Start(Sh("sleep 30"), &error));
  EXPECT_FALSE(p.Wait(milliseconds(50)).has_value());
  EXPECT_TRUE(p.running());
  EXPECT_TRUE(ProcessExists(p.pid()));
  Result r = p.Kill();
  EXPECT_FALSE(p.running());
  EXPECT_EQ(r.outcome, Outcome::kSignaled);
}

TEST(SubprocessTest, DestructorLeavesNoZombie) {
  std::int64_t pid;
  {
    Process p;
    std::string error;
    ASSERT_TRUE(p.Start(Sh("sleep 30"), &error));
    pid = p.pid();
  }
  // Reaped: the pid no longer names a process (not even a zombie).
  EXPECT_FALSE(ProcessExists(pid));
}

TEST(SubprocessTest, ExtraEnvAndWorkingDir) {
  testing::TempDir dir;
  Options o = Sh("echo $LABTRACE_X; pwd");
  o.extra_env = {"LABTRACE_X=hello"};
  o.working_dir = dir.path().string();
  Result r = subprocess::Run(o);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r.output,
            "hello\n" + std::filesystem::canonical(dir.path()).string() + "\n");
}

TEST(SubprocessTest, ExtraEnvOverridesInherited) {
  ::setenv("LABTRACE_Y", "old", 1);
  Options o = Sh("echo $LABTRACE_Y");
  o.extra_env = {"LABTRACE_Y=new"};
  EXPECT_EQ(subprocess::Run(o).output, "new\n");
}

TEST(SubprocessTest, ManyConcurrentRuns) {
  std::vector<std::thread> threads;
  std::atomic<int> ok{0};
  for (int i = 0; i < 16; ++i) {
    threads.emplace_back([&ok, i] {
      Options o;
      o.argv = {"/bin/echo", std::to_string(i)};
      Result r = subprocess::Run(o);
      if (r.ok() && r.output == std::to_string(i) + "\n") ++ok;
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(ok.load(), 16);
}

}  // namespace
}  // namespace labtrace::subprocess
