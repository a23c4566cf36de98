// Tests of the Windows subprocess layer (common/subprocess_win.cc), built with
// mingw-w64 and run under wine by tests/win/run_wine_tests.sh. The child
// process is tests/win/child_helper.exe, found next to this test binary.

#ifndef WIN32_LEAN_AND_MEAN
#define WIN32_LEAN_AND_MEAN
#endif
#include <windows.h>
// shellapi.h (for CommandLineToArgvW) needs windows.h first.
#include <shellapi.h>

#include <algorithm>
#include <atomic>
#include <cctype>
#include <chrono>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "common/subprocess.h"
#include "common/subprocess_win_internal.h"
#include "gtest/gtest.h"

namespace labtrace::subprocess {
namespace {

using internal::BuildWindowsCommandLine;
using internal::MergeEnvironmentBlock;
using internal::QuoteWindowsArg;
using internal::Utf8ToWide;
using internal::WideToUtf8;
using std::chrono::milliseconds;
using std::chrono::seconds;

std::string Lower(std::string s) {
  std::transform(s.begin(), s.end(), s.begin(),
                 [](unsigned char c) { return std::tolower(c); });
  return s;
}

std::string TestDir() {
  wchar_t path[MAX_PATH];
  const DWORD n = GetModuleFileNameW(nullptr, path, MAX_PATH);
  std::wstring dir(path, n);
  return WideToUtf8(dir.substr(0, dir.find_last_of(L'\\')));
}

std::string HelperPath() { return TestDir() + "\\child_helper.exe"; }

Options Argv(std::vector<std::string> argv) {
  Options options;
  options.argv = std::move(argv);
  return options;
}

Options Helper(std::vector<std::string> args) {
  Options options;
  options.argv.push_back(HelperPath());
  for (std::string& arg : args) options.argv.push_back(std::move(arg));
  return options;
}

// Polls `done` every 20 ms for up to `limit`.
bool WaitUntil(const std::function<bool()>& done, milliseconds limit) {
  const auto deadline = std::chrono::steady_clock::now() + limit;
  while (!done()) {
    if (std::chrono::steady_clock::now() > deadline) return false;
    std::this_thread::sleep_for(milliseconds(20));
  }
  return true;
}

// The number after "`key` " in `text`, or -1.
std::int64_t NumberAfter(const std::string& text, const std::string& key) {
  const std::size_t at = text.find(key + " ");
  if (at == std::string::npos) return -1;
  return std::stoll(text.substr(at + key.size() + 1));
}

std::string Hex(const std::string& bytes) {
  static const char kHex[] = "0123456789abcdef";
  std::string hex;
  for (unsigned char c : bytes) {
    hex += kHex[c >> 4];
    hex += kHex[c & 15];
  }
  return hex;
}

// What child_helper's "print N" writes, from byte `from` to `to`.
std::string Pattern(std::size_t from, std::size_t to) {
  std::string bytes;
  for (std::size_t k = from; k < to; ++k) {
    bytes += static_cast<char>('0' + k % 10);
  }
  return bytes;
}

// ---- Pure helpers -------------------------------------------------------

TEST(QuoteWindowsArgTest, KeepsPlainArgumentsAsIs) {
  EXPECT_EQ(QuoteWindowsArg(L"abc"), L"abc");
  EXPECT_EQ(QuoteWindowsArg(L"C:\\dir\\file.txt"), L"C:\\dir\\file.txt");
  EXPECT_EQ(QuoteWindowsArg(L"trailing\\"), L"trailing\\");
  EXPECT_EQ(QuoteWindowsArg(L"--flag=1"), L"--flag=1");
}

TEST(QuoteWindowsArgTest, QuotesAndEscapes) {
  EXPECT_EQ(QuoteWindowsArg(L""), L"\"\"");
  EXPECT_EQ(QuoteWindowsArg(L"a b"), L"\"a b\"");
  EXPECT_EQ(QuoteWindowsArg(L"a\tb"), L"\"a\tb\"");
  EXPECT_EQ(QuoteWindowsArg(L"a\"b"), L"\"a\\\"b\"");
  // a\"b: the backslash precedes a quote, so it is doubled.
  EXPECT_EQ(QuoteWindowsArg(L"a\\\"b"), L"\"a\\\\\\\"b\"");
  // Trailing backslashes precede the closing quote.
  EXPECT_EQ(QuoteWindowsArg(L"a b\\"), L"\"a b\\\\\"");
  // Backslashes elsewhere stay single.
  EXPECT_EQ(QuoteWindowsArg(L"\\\\server\\share dir"),
            L"\"\\\\server\\share dir\"");
}

TEST(BuildWindowsCommandLineTest, QuotesProgramWithoutEscaping) {
  EXPECT_EQ(BuildWindowsCommandLine({L"C:\\Program Files\\x.exe", L"a b"}),
            L"\"C:\\Program Files\\x.exe\" \"a b\"");
  EXPECT_EQ(BuildWindowsCommandLine({L"x.exe", L"", L"y"}), L"x.exe \"\" y");
}

const std::vector<std::string>& TrickyArgs() {
  static const std::vector<std::string> args = {
      "",
      "plain",
      "two words",
      " leading space",
      "trailing space ",
      "tab\there",
      "quote\"inside",
      "\"",
      "\"\"",
      "\"quoted\"",
      "back\\slash",
      "trailing\\",
      "trailing space\\",
      "two trailing\\\\",
      "\\\\server\\share\\",
      "slash before quote\\\"",
      "\\\"",
      "\\\\\"x",
      "new\nline",
      "%PATH% & | < > ^ ! ( )",
      "\xC3\xBCn\xC3\xAF"
      "c\xC3\xB8"
      "d\xC3\xA9 \xE2\x9C\x93 \xE6\x97\xA5\xE6\x9C\xAC",
      "",
  };
  return args;
}

TEST(BuildWindowsCommandLineTest, RoundTripsThroughCommandLineToArgvW) {
  std::vector<std::wstring> argv = {L"C:\\dir with space\\prog.exe"};
  for (const std::string& arg : TrickyArgs()) argv.push_back(Utf8ToWide(arg));
  const std::wstring line = BuildWindowsCommandLine(argv);
  int argc = 0;
  wchar_t** parsed = CommandLineToArgvW(line.c_str(), &argc);
  ASSERT_NE(parsed, nullptr);
  std::vector<std::wstring> back(parsed, parsed + argc);
  LocalFree(parsed);
  EXPECT_EQ(back, argv);
}

TEST(Utf8Test, RoundTrips) {
  const std::string text = "h\xC3\xA9llo \xE2\x9C\x93 \xF0\x9F\x98\x80";
  const std::wstring wide = Utf8ToWide(text);
  EXPECT_EQ(wide, L"h\u00e9llo \u2713 \U0001F600");
  EXPECT_EQ(WideToUtf8(wide), text);
  EXPECT_EQ(Utf8ToWide(""), L"");
  EXPECT_EQ(WideToUtf8(L""), "");
}

TEST(MergeEnvironmentBlockTest, OverridesCaseInsensitivelyAndSorts) {
  const wchar_t parent[] = L"=C:=C:\\dir\0b=2\0Path=old\0A=1\0\0";
  std::wstring block;
  std::string error;
  ASSERT_TRUE(MergeEnvironmentBlock(parent, {"PATH=new", "c=3", "EMPTY="},
                                    &block, &error))
      << error;
  const wchar_t expected[] =
      L"=C:=C:\\dir\0A=1\0b=2\0c=3\0EMPTY=\0PATH=new\0\0";
  EXPECT_EQ(block,
            std::wstring(expected, sizeof(expected) / sizeof(wchar_t) - 1));
}

TEST(MergeEnvironmentBlockTest, EmptyBlockHasTwoNulls) {
  std::wstring block;
  std::string error;
  ASSERT_TRUE(MergeEnvironmentBlock(nullptr, {}, &block, &error));
  EXPECT_EQ(block, std::wstring(2, L'\0'));
}

TEST(MergeEnvironmentBlockTest, RejectsEntriesWithoutName) {
  std::wstring block;
  std::string error;
  EXPECT_FALSE(MergeEnvironmentBlock(nullptr, {"NOEQUALS"}, &block, &error));
  EXPECT_NE(error.find("NOEQUALS"), std::string::npos);
  EXPECT_FALSE(MergeEnvironmentBlock(nullptr, {"=value"}, &block, &error));
}

TEST(ResultTest, Describe) {
  Result r;
  r.outcome = Outcome::kExited;
  r.exit_code = 3;
  EXPECT_EQ(r.Describe(), "exited with code 3");
  r.outcome = Outcome::kTimedOut;
  r.elapsed = milliseconds(60000);
  EXPECT_EQ(r.Describe(), "timed out after 60000 ms");
  r.outcome = Outcome::kSignaled;
  r.term_signal = 9;
  EXPECT_EQ(r.Describe(), "killed by signal 9");
  r.outcome = Outcome::kSpawnFailed;
  r.error = "no such file";
  EXPECT_EQ(r.Describe(), "failed to start: no such file");
  EXPECT_STREQ(OutcomeName(Outcome::kExited), "exited");
  EXPECT_STREQ(OutcomeName(Outcome::kSignaled), "signaled");
  EXPECT_STREQ(OutcomeName(Outcome::kTimedOut), "timed_out");
  EXPECT_STREQ(OutcomeName(Outcome::kSpawnFailed), "spawn_failed");
}

// ---- Running children ---------------------------------------------------

TEST(RunTest, ReportsExitCode) {
  const Result r = subprocess::Run(Helper({"exit", "3"}));
  EXPECT_EQ(r.outcome, Outcome::kExited);
  EXPECT_EQ(r.exit_code, 3);
  EXPECT_FALSE(r.ok());
  EXPECT_EQ(r.Describe(), "exited with code 3");
  EXPECT_TRUE(r.error.empty());
}

TEST(RunTest, CapturesOutput) {
  const Result r = subprocess::Run(Helper({"say", "hello world"}));
  EXPECT_TRUE(r.ok()) << r.Describe();
  EXPECT_EQ(r.output, "hello world\n");
  EXPECT_FALSE(r.output_truncated);
}

TEST(RunTest, MergesStdoutAndStderrInOrder) {
  const Result r = subprocess::Run(
      Helper({"say", "out1", "err", "err1", "say", "out2", "err", "err2"}));
  EXPECT_TRUE(r.ok()) << r.Describe();
  EXPECT_EQ(r.output, "out1\nerr1\nout2\nerr2\n");
}

TEST(RunTest, KeepsTheTailWhenOutputExceedsCap) {
  Options options = Helper({"print", "100000"});
  options.output_cap = 1000;
  const Result r = subprocess::Run(options);
  EXPECT_TRUE(r.ok()) << r.Describe();
  EXPECT_TRUE(r.output_truncated);
  EXPECT_EQ(r.output, Pattern(99000, 100000));
}

TEST(RunTest, OutputExactlyAtCapIsNotTruncated) {
  Options options = Helper({"print", "1000"});
  options.output_cap = 1000;
  const Result r = subprocess::Run(options);
  EXPECT_FALSE(r.output_truncated);
  EXPECT_EQ(r.output, Pattern(0, 1000));
}

TEST(RunTest, ZeroCapKeepsNothing) {
  Options options = Helper({"print", "10"});
  options.output_cap = 0;
  const Result r = subprocess::Run(options);
  EXPECT_TRUE(r.ok()) << r.Describe();
  EXPECT_TRUE(r.output_truncated);
  EXPECT_EQ(r.output, "");
}

TEST(RunTest, LargeOutputDoesNotBlockTheChild) {
  Options options = Helper({"print", "5000000", "say", "end"});
  options.timeout = seconds(60);
  const Result r = subprocess::Run(options);
  EXPECT_TRUE(r.ok()) << r.Describe();
  EXPECT_TRUE(r.output_truncated);
  EXPECT_EQ(r.output.size(), options.output_cap);
  EXPECT_EQ(r.output.substr(r.output.size() - 4), "end\n");
}

TEST(RunTest, TimeoutKillsTheChild) {
  Options options = Helper({"say", "started", "sleep", "60000"});
  options.timeout = milliseconds(500);
  const Result r = subprocess::Run(options);
  EXPECT_EQ(r.outcome, Outcome::kTimedOut);
  EXPECT_GE(r.elapsed, milliseconds(500));
  EXPECT_LT(r.elapsed, seconds(20));
  EXPECT_EQ(r.output, "started\n");
  EXPECT_EQ(r.Describe().rfind("timed out after ", 0), 0u) << r.Describe();
}

TEST(RunTest, TimeoutKillsTheGrandchild) {
  Options options = Helper({"spawn-sleeper", "60000", "sleep", "60000"});
  options.timeout = seconds(2);
  const Result r = subprocess::Run(options);
  EXPECT_EQ(r.outcome, Outcome::kTimedOut);
  const std::int64_t grandchild = NumberAfter(r.output, "grandchild");
  ASSERT_GT(grandchild, 0) << r.output;
  EXPECT_TRUE(
      WaitUntil([&] { return !ProcessExists(grandchild); }, seconds(10)));
}

TEST(RunTest, ReturnsWhenChildExitsLeavingGrandchildHoldingThePipe) {
  Options options = Helper({"spawn-sleeper", "60000", "say", "done"});
  options.timeout = seconds(30);
  const Result r = subprocess::Run(options);
  EXPECT_EQ(r.outcome, Outcome::kExited) << r.Describe();
  EXPECT_EQ(r.exit_code, 0);
  EXPECT_LT(r.elapsed, seconds(10));
  EXPECT_NE(r.output.find("done\n"), std::string::npos);
  const std::int64_t grandchild = NumberAfter(r.output, "grandchild");
  ASSERT_GT(grandchild, 0) << r.output;
  EXPECT_TRUE(
      WaitUntil([&] { return !ProcessExists(grandchild); }, seconds(10)));
}

TEST(RunTest, ConcurrentRunsKeepTheirOwnOutput) {
  std::vector<Result> results(4);
  std::vector<std::thread> threads;
  for (std::size_t i = 0; i < results.size(); ++i) {
    threads.emplace_back([i, &results] {
      results[i] = subprocess::Run(Helper({"say", "child" + std::to_string(i),
                                           "sleep", std::to_string(100 * i)}));
    });
  }
  for (std::thread& t : threads) t.join();
  for (std::size_t i = 0; i < results.size(); ++i) {
    EXPECT_TRUE(results[i].ok()) << results[i].Describe();
    EXPECT_EQ(results[i].output, "child" + std::to_string(i) + "\n");
  }
}

// Only the output pipe and NUL reach the child, not every inheritable handle
// of this process (PROC_THREAD_ATTRIBUTE_HANDLE_LIST).
TEST(SpawnTest, ChildInheritsNoOtherHandles) {
  SECURITY_ATTRIBUTES inheritable{sizeof(SECURITY_ATTRIBUTES), nullptr, TRUE};
  const HANDLE event = CreateEventW(&inheritable, TRUE, TRUE, nullptr);
  ASSERT_NE(event, nullptr);
  const std::string value =
      std::to_string(reinterpret_cast<std::uintptr_t>(event));

  // Control: a plain CreateProcessW that inherits handles does see it (the
  // helper exits 10 if not).
  std::wstring line = L"child_helper.exe handle " + Utf8ToWide(value);
  const HANDLE null_device = CreateFileW(
      L"NUL", GENERIC_READ | GENERIC_WRITE, FILE_SHARE_READ | FILE_SHARE_WRITE,
      &inheritable, OPEN_EXISTING, 0, nullptr);
  ASSERT_NE(null_device, INVALID_HANDLE_VALUE);
  STARTUPINFOW startup{};
  startup.cb = sizeof(startup);
  startup.dwFlags = STARTF_USESTDHANDLES;
  startup.hStdInput = null_device;
  startup.hStdOutput = null_device;
  startup.hStdError = null_device;
  PROCESS_INFORMATION info{};
  ASSERT_TRUE(CreateProcessW(Utf8ToWide(HelperPath()).c_str(), line.data(),
                             nullptr, nullptr, TRUE, CREATE_NO_WINDOW, nullptr,
                             nullptr, &startup, &info));
  WaitForSingleObject(info.hProcess, 30000);
  DWORD control_exit = 1;
  GetExitCodeProcess(info.hProcess, &control_exit);
  CloseHandle(info.hThread);
  CloseHandle(info.hProcess);
  CloseHandle(null_device);
  EXPECT_EQ(control_exit, 0u);

  const Result r = subprocess::Run(Helper({"handle", value}));
  CloseHandle(event);
  EXPECT_EQ(r.exit_code, 10) << r.Describe();
  EXPECT_EQ(r.output, "handle " + value + " absent\n");
}

TEST(SpawnTest, MissingProgramFailsToStart) {
  const Result r = subprocess::Run(Argv({"labtrace_no_such_program", "x"}));
  EXPECT_EQ(r.outcome, Outcome::kSpawnFailed);
  EXPECT_NE(r.error.find("labtrace_no_such_program"), std::string::npos);
  EXPECT_EQ(r.Describe().rfind("failed to start: ", 0), 0u) << r.Describe();

  Process process;
  std::string error;
  EXPECT_FALSE(
      process.Start(Argv({"C:\\labtrace\\missing\\prog.exe"}), &error));
  EXPECT_NE(error.find("prog.exe"), std::string::npos) << error;
  EXPECT_FALSE(process.running());
  EXPECT_EQ(process.pid(), -1);
}

TEST(SpawnTest, EmptyArgvFailsToStart) {
  const Result r = subprocess::Run(Options{});
  EXPECT_EQ(r.outcome, Outcome::kSpawnFailed);
  EXPECT_FALSE(r.error.empty());
}

TEST(SpawnTest, MissingWorkingDirFailsToStart) {
  Options options = Helper({"exit", "0"});
  options.working_dir = "C:\\labtrace-no-such-dir";
  const Result r = subprocess::Run(options);
  EXPECT_EQ(r.outcome, Outcome::kSpawnFailed);
  EXPECT_NE(r.error.find("CreateProcessW"), std::string::npos) << r.error;
}

TEST(ArgsTest, ReachTheChildExactly) {
  std::vector<std::string> args = {"args"};
  args.insert(args.end(), TrickyArgs().begin(), TrickyArgs().end());
  const Result r = subprocess::Run(Helper(args));
  ASSERT_TRUE(r.ok()) << r.Describe() << "\n" << r.output;
  std::string expected;
  for (const std::string& arg : TrickyArgs())
    expected += "arg:" + Hex(arg) + "\n";
  EXPECT_EQ(r.output, expected);
}

TEST(ArgsTest, ProgramPathWithSpaces) {
  // Copy the helper into a directory whose name has spaces.
  wchar_t temp[MAX_PATH];
  GetTempPathW(MAX_PATH, temp);
  const std::wstring dir = std::wstring(temp) + L"labtrace dir with spaces";
  CreateDirectoryW(dir.c_str(), nullptr);
  const std::wstring copy = dir + L"\\child helper.exe";
  ASSERT_TRUE(CopyFileW(Utf8ToWide(HelperPath()).c_str(), copy.c_str(), FALSE));
  const Result r = subprocess::Run(Argv({WideToUtf8(copy), "args", "x y"}));
  EXPECT_TRUE(r.ok()) << r.Describe();
  EXPECT_EQ(r.output, "arg:" + Hex("x y") + "\n");
  DeleteFileW(copy.c_str());
  RemoveDirectoryW(dir.c_str());
}

TEST(EnvTest, ExtraEnvReachesTheChild) {
  Options options = Helper({"env", "LABTRACE_TEST_VAR"});
  options.extra_env = {"LABTRACE_TEST_VAR=hello world = x"};
  const Result r = subprocess::Run(options);
  EXPECT_TRUE(r.ok()) << r.Describe();
  EXPECT_EQ(r.output, "LABTRACE_TEST_VAR=hello world = x\n");
}

TEST(EnvTest, InheritsAndOverridesTheParentEnvironment) {
  ASSERT_TRUE(SetEnvironmentVariableW(L"LABTRACE_PARENT_VAR", L"parent"));
  ASSERT_TRUE(SetEnvironmentVariableW(L"LABTRACE_OVERRIDE", L"old"));
  Options options =
      Helper({"env", "LABTRACE_PARENT_VAR", "env", "LABTRACE_OVERRIDE", "env",
              "LABTRACE_EMPTY", "env", "LABTRACE_UNSET"});
  const Result inherited = subprocess::Run(options);
  EXPECT_EQ(inherited.output,
            "LABTRACE_PARENT_VAR=parent\nLABTRACE_OVERRIDE=old\n"
            "LABTRACE_EMPTY unset\nLABTRACE_UNSET unset\n");

  options.extra_env = {"labtrace_override=new", "LABTRACE_EMPTY="};
  const Result merged = subprocess::Run(options);
  EXPECT_TRUE(merged.ok()) << merged.Describe();
  EXPECT_EQ(merged.output,
            "LABTRACE_PARENT_VAR=parent\nLABTRACE_OVERRIDE=new\n"
            "LABTRACE_EMPTY=\nLABTRACE_UNSET unset\n");
  SetEnvironmentVariableW(L"LABTRACE_PARENT_VAR", nullptr);
  SetEnvironmentVariableW(L"LABTRACE_OVERRIDE", nullptr);
}

TEST(EnvTest, BadEntryFailsToStart) {
  Options options = Helper({"exit", "0"});
  options.extra_env = {"NOEQUALS"};
  const Result r = subprocess::Run(options);
  EXPECT_EQ(r.outcome, Outcome::kSpawnFailed);
  EXPECT_NE(r.error.find("NOEQUALS"), std::string::npos) << r.error;
}

TEST(WorkingDirTest, ChildStartsThere) {
  wchar_t temp[MAX_PATH];
  const DWORD n = GetTempPathW(MAX_PATH, temp);
  std::string dir = WideToUtf8(std::wstring(temp, n));
  while (dir.size() > 3 && dir.back() == '\\') dir.pop_back();
  Options options = Helper({"cwd"});
  options.working_dir = dir;
  const Result r = subprocess::Run(options);
  EXPECT_TRUE(r.ok()) << r.Describe();
  std::string got = r.output;
  if (!got.empty() && got.back() == '\n') got.pop_back();
  while (got.size() > 3 && got.back() == '\\') got.pop_back();
  EXPECT_EQ(Lower(got), Lower(dir));
}

TEST(FindExecutableTest, SearchesPathWithPathext) {
  const std::string cmd = FindProgram("cmd");
  ASSERT_FALSE(cmd.empty());
  EXPECT_EQ(Lower(cmd).substr(cmd.size() - 8), "\\cmd.exe") << cmd;
  EXPECT_EQ(Lower(FindProgram("CMD.EXE")), Lower(cmd));
  EXPECT_EQ(FindProgram("labtrace_no_such_program"), "");
  EXPECT_EQ(FindProgram(""), "");
}

TEST(FindExecutableTest, ChecksPathsAsIs) {
  const std::string helper = HelperPath();
  EXPECT_EQ(Lower(FindProgram(helper)), Lower(helper));
  // Without the extension, PATHEXT supplies it.
  EXPECT_EQ(Lower(FindProgram(helper.substr(0, helper.size() - 4))),
            Lower(helper));
  EXPECT_EQ(FindProgram(TestDir() + "\\labtrace_missing.exe"), "");
  // A directory is not an executable.
  EXPECT_EQ(FindProgram(TestDir()), "");
}

TEST(FindExecutableTest, FindsBareNameInAddedPathEntry) {
  wchar_t old_path[32768];
  const DWORD n = GetEnvironmentVariableW(L"PATH", old_path, 32768);
  const std::wstring saved(old_path, n);
  const std::wstring quoted_dir = L"\"" + Utf8ToWide(TestDir()) + L"\"";
  ASSERT_TRUE(SetEnvironmentVariableW(
      L"PATH", (L";" + quoted_dir + L";" + saved).c_str()));
  const std::string found = FindProgram("child_helper");
  SetEnvironmentVariableW(L"PATH", saved.c_str());
  EXPECT_EQ(Lower(found), Lower(HelperPath()));
}

TEST(ProcessExistsTest, SeesLiveAndExitedProcesses) {
  EXPECT_TRUE(ProcessExists(GetCurrentProcessId()));
  EXPECT_FALSE(ProcessExists(0));
  EXPECT_FALSE(ProcessExists(-1));
  const Result r = subprocess::Run(Helper({"pid"}));
  const std::int64_t pid = NumberAfter(r.output, "pid");
  ASSERT_GT(pid, 0) << r.output;
  EXPECT_FALSE(ProcessExists(pid));
}

// ---- The Process API ----------------------------------------------------

TEST(ProcessTest, StartWaitKill) {
  Process process;
  std::string error;
  ASSERT_TRUE(process.Start(Helper({"say", "ready", "sleep", "60000"}), &error))
      << error;
  EXPECT_TRUE(process.running());
  const std::int64_t pid = process.pid();
  EXPECT_GT(pid, 0);
  EXPECT_TRUE(ProcessExists(pid));
  EXPECT_TRUE(
      WaitUntil([&] { return process.output() == "ready\n"; }, seconds(10)));
  EXPECT_FALSE(process.Wait(milliseconds(0)).has_value());
  EXPECT_FALSE(process.Wait(milliseconds(100)).has_value());

  const Result r = process.Kill();
  EXPECT_EQ(r.outcome, Outcome::kSignaled);
  EXPECT_EQ(r.term_signal, 9);
  EXPECT_EQ(r.Describe(), "killed by signal 9");
  EXPECT_EQ(r.output, "ready\n");
  EXPECT_FALSE(process.running());
  EXPECT_FALSE(ProcessExists(pid));

  // The result stays available.
  const std::optional<Result> again = process.Wait(std::nullopt);
  ASSERT_TRUE(again.has_value());
  EXPECT_EQ(again->outcome, Outcome::kSignaled);
  EXPECT_EQ(process.Kill(true).outcome, Outcome::kSignaled);
}

TEST(ProcessTest, WaitReturnsTheSameResultTwice) {
  Process process;
  ASSERT_TRUE(process.Start(Helper({"say", "x", "exit", "7"}), nullptr));
  const std::optional<Result> first = process.Wait(seconds(30));
  ASSERT_TRUE(first.has_value());
  EXPECT_EQ(first->exit_code, 7);
  EXPECT_EQ(first->output, "x\n");
  EXPECT_FALSE(process.running());
  const std::optional<Result> second = process.Wait(milliseconds(0));
  ASSERT_TRUE(second.has_value());
  EXPECT_EQ(second->exit_code, 7);
  // Kill after exit does not change how it ended.
  EXPECT_EQ(process.Kill().outcome, Outcome::kExited);
}

TEST(ProcessTest, StartTwiceFails) {
  Process process;
  ASSERT_TRUE(process.Start(Helper({"exit", "0"}), nullptr));
  std::string error;
  EXPECT_FALSE(process.Start(Helper({"exit", "0"}), &error));
  EXPECT_FALSE(error.empty());
  EXPECT_TRUE(process.Wait(seconds(30)).has_value());
}

TEST(ProcessTest, NotStartedProcessReportsSpawnFailure) {
  Process process;
  EXPECT_FALSE(process.running());
  EXPECT_EQ(process.pid(), -1);
  EXPECT_EQ(process.output(), "");
  EXPECT_FALSE(process.Interrupt());
  const std::optional<Result> r = process.Wait(milliseconds(0));
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(r->outcome, Outcome::kSpawnFailed);
  EXPECT_EQ(process.Kill().outcome, Outcome::kSpawnFailed);
}

TEST(ProcessTest, DestructorKillsTheTree) {
  std::int64_t child = -1;
  std::int64_t grandchild = -1;
  {
    Process process;
    ASSERT_TRUE(process.Start(
        Helper({"spawn-sleeper", "60000", "sleep", "60000"}), nullptr));
    child = process.pid();
    ASSERT_TRUE(WaitUntil(
        [&] { return process.output().find('\n') != std::string::npos; },
        seconds(10)));
    grandchild = NumberAfter(process.output(), "grandchild");
  }
  ASSERT_GT(grandchild, 0);
  EXPECT_TRUE(WaitUntil([&] { return !ProcessExists(child); }, seconds(10)));
  EXPECT_TRUE(
      WaitUntil([&] { return !ProcessExists(grandchild); }, seconds(10)));
}

TEST(ProcessTest, MoveKeepsTheChild) {
  Process a;
  ASSERT_TRUE(a.Start(Helper({"sleep", "200", "exit", "5"}), nullptr));
  const std::int64_t pid = a.pid();
  Process b(std::move(a));
  EXPECT_EQ(b.pid(), pid);
  EXPECT_TRUE(b.running());
  Process c;
  c = std::move(b);
  const std::optional<Result> r = c.Wait(seconds(30));
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(r->exit_code, 5);
}

TEST(ProcessTest, OutputCanBeReadFromAnotherThread) {
  Process process;
  ASSERT_TRUE(
      process.Start(Helper({"print", "200000", "sleep", "200"}), nullptr));
  std::atomic<bool> stop{false};
  std::size_t largest = 0;
  std::thread watcher([&] {
    while (!stop) {
      largest = std::max(largest, process.output().size());
      std::this_thread::yield();
    }
  });
  const std::optional<Result> r = process.Wait(seconds(30));
  stop = true;
  watcher.join();
  ASSERT_TRUE(r.has_value());
  EXPECT_TRUE(r->ok()) << r->Describe();
  EXPECT_LE(largest, r->output.size());
  EXPECT_EQ(r->output.size(), 64u * 1024);
}

bool HasConsole() {
  DWORD pid = 0;
  return GetConsoleProcessList(&pid, 1) != 0;
}

bool RunningUnderWine() {
  const HMODULE ntdll = GetModuleHandleW(L"ntdll.dll");
  return ntdll != nullptr &&
         GetProcAddress(ntdll, "wine_get_version") != nullptr;
}

TEST(ProcessTest, InterruptSendsCtrlBreakOnlyWithASharedConsole) {
  Process process;
  ASSERT_TRUE(process.Start(Helper({"wait-break"}), nullptr));
  ASSERT_TRUE(
      WaitUntil([&] { return process.output() == "ready\n"; }, seconds(10)));
  if (!HasConsole()) {
    // The child got a console of its own (CREATE_NO_WINDOW): nothing to send
    // CTRL_BREAK through. run_wine_tests.sh runs the tests this way.
    EXPECT_FALSE(process.Interrupt());
    EXPECT_TRUE(process.running());
    EXPECT_FALSE(process.Wait(milliseconds(200)).has_value());
    EXPECT_EQ(process.Kill().outcome, Outcome::kSignaled);
    return;
  }
  if (RunningUnderWine()) {
    GTEST_SKIP() << "wine's console does not deliver CTRL_BREAK_EVENT";
  }
  ASSERT_TRUE(process.Interrupt());
  const std::optional<Result> r = process.Wait(seconds(10));
  ASSERT_TRUE(r.has_value()) << "child ignored CTRL_BREAK";
  EXPECT_EQ(r->exit_code, 42);
  EXPECT_EQ(r->output, "ready\nbreak\n");
}

}  // namespace
}  // namespace labtrace::subprocess
