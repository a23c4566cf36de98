// Windows implementation of common/subprocess.h: CreateProcessW with a quoted
// command line, a job object that holds the child's whole process tree, and
// one pipe for merged stdout+stderr drained by a background thread. Uses only
// the Win32 API and the standard library, so it cross-compiles with mingw-w64
// (tests/win/ builds it and runs its tests under wine).
//
// Windows-specific behaviour:
//  - The child is created suspended, put in a job object with
//    JOB_OBJECT_LIMIT_KILL_ON_JOB_CLOSE, then resumed, so every process it
//    starts is in the job too. Once the child has exited, whatever it left
//    running in the job is terminated (the tree never outlives the child, and
//    the output pipe then reaches end-of-file).
//  - Kill() and timeouts terminate the job at once: Options::kill_grace is not
//    used, as Windows has no SIGTERM that console programs handle. A child
//    ended by Kill(false) is reported as kSignaled with term_signal 9 (the
//    number of SIGKILL, standing for "terminated"), so callers see the same
//    outcome as on POSIX.
//  - Interrupt() sends CTRL_BREAK_EVENT to the child's process group (the
//    child is created with CREATE_NEW_PROCESS_GROUP). That reaches the child
//    only if it shares the caller's console. So the child gets
//    CREATE_NO_WINDOW (a hidden console of its own, no window popping up)
//    only when the caller has no console; then Interrupt() returns false and
//    the caller must fall back to Kill().
//  - exit_code is the process's DWORD exit code cast to int, so NTSTATUS
//    crash codes (0xC0000005 and the like) come out negative.
//  - argv[0] is resolved with FindProgram() (PATH + PATHEXT) relative to
//    the caller's working directory, not Options::working_dir. Arguments are
//    quoted for the MSVCRT/CommandLineToArgvW parser; a .bat/.cmd program is
//    run by cmd.exe, which parses its command line differently, so do not
//    pass untrusted arguments to batch files.
//  - Standard input is the NUL device. Only the pipe and NUL handles are
//    inherited (PROC_THREAD_ATTRIBUTE_HANDLE_LIST), so children started
//    concurrently from other threads cannot hold each other's pipes open.

#ifndef _WIN32_WINNT
#define _WIN32_WINNT 0x0A00  // Windows 10: nested jobs, handle lists.
#endif
#include <windows.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <cwchar>
#include <cwctype>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "common/output_sink.h"
#include "common/subprocess.h"
#include "common/subprocess_win_internal.h"

namespace labtrace::subprocess {

namespace internal {

std::wstring Utf8ToWide(const std::string& utf8) {
  if (utf8.empty() || utf8.size() > INT32_MAX) return {};
  const int size = static_cast<int>(utf8.size());
  const int n = MultiByteToWideChar(CP_UTF8, 0, utf8.data(), size, nullptr, 0);
  std::wstring wide(n, L'\0');
  MultiByteToWideChar(CP_UTF8, 0, utf8.data(), size, wide.data(), n);
  return wide;
}

std::string WideToUtf8(const std::wstring& wide) {
  if (wide.empty() || wide.size() > INT32_MAX) return {};
  const int size = static_cast<int>(wide.size());
  const int n = WideCharToMultiByte(CP_UTF8, 0, wide.data(), size, nullptr, 0,
                                    nullptr, nullptr);
  std::string utf8(n, '\0');
  WideCharToMultiByte(CP_UTF8, 0, wide.data(), size, utf8.data(), n, nullptr,
                      nullptr);
  return utf8;
}

std::wstring QuoteWindowsArg(const std::wstring& arg) {
  if (!arg.empty() && arg.find_first_of(L" \t\n\v\"") == std::wstring::npos) {
    return arg;
  }
  std::wstring quoted = L"\"";
  std::size_t backslashes = 0;
  for (wchar_t c : arg) {
    if (c == L'\\') {
      ++backslashes;
      continue;
    }
    // Backslashes are literal unless they precede a quote; then each one
    // must be doubled and the quote itself escaped.
    quoted.append(c == L'"' ? backslashes * 2 + 1 : backslashes, L'\\');
    quoted.push_back(c);
    backslashes = 0;
  }
  // Trailing backslashes precede the closing quote: double them.
  quoted.append(backslashes * 2, L'\\');
  quoted.push_back(L'"');
  return quoted;
}

std::wstring BuildWindowsCommandLine(const std::vector<std::wstring>& argv) {
  std::wstring line;
  for (std::size_t i = 0; i < argv.size(); ++i) {
    if (i == 0) {
      const std::wstring& program = argv[0];
      const bool needs_quotes =
          program.empty() ||
          program.find_first_of(L" \t") != std::wstring::npos;
      line += needs_quotes ? L"\"" + program + L"\"" : program;
    } else {
      line += L' ';
      line += QuoteWindowsArg(argv[i]);
    }
  }
  return line;
}

namespace {

// The name of an environment entry: up to the first '=' after the first
// character (entries such as "=C:=C:\dir" have names that start with '=').
std::wstring EnvName(const std::wstring& entry) {
  return entry.substr(0, entry.find(L'=', 1));
}

// Case-insensitive ordinal comparison, as Windows orders environment blocks.
int CompareEnvNames(const std::wstring& a, const std::wstring& b) {
  return CompareStringOrdinal(a.data(), static_cast<int>(a.size()), b.data(),
                              static_cast<int>(b.size()), TRUE) -
         CSTR_EQUAL;
}

}  // namespace

bool MergeEnvironmentBlock(const wchar_t* parent,
                           const std::vector<std::string>& extra,
                           std::wstring* block, std::string* error) {
  std::vector<std::wstring> entries;
  if (parent != nullptr) {
    for (const wchar_t* p = parent; *p != L'\0'; p += std::wcslen(p) + 1) {
      entries.emplace_back(p);
    }
  }
  for (const std::string& entry : extra) {
    const std::size_t eq = entry.find('=');
    if (eq == std::string::npos || eq == 0) {
      *error = "bad extra_env entry (want KEY=VALUE): \"" + entry + "\"";
      return false;
    }
    std::wstring wide = Utf8ToWide(entry);
    const std::wstring name = EnvName(wide);
    std::erase_if(entries, [&name](const std::wstring& e) {
      return CompareEnvNames(EnvName(e), name) == 0;
    });
    entries.push_back(std::move(wide));
  }
  std::stable_sort(entries.begin(), entries.end(),
                   [](const std::wstring& a, const std::wstring& b) {
                     return CompareEnvNames(EnvName(a), EnvName(b)) < 0;
                   });
  block->clear();
  for (const std::wstring& e : entries) {
    block->append(e);
    block->push_back(L'\0');
  }
  if (entries.empty()) block->push_back(L'\0');
  block->push_back(L'\0');
  return true;
}

}  // namespace internal

namespace {

using internal::Utf8ToWide;
using internal::WideToUtf8;
using std::chrono::milliseconds;

// How long Wait()/Kill() wait for the output pipe to reach end-of-file once
// the job is gone. Only a pipe handle leaked into a process outside the job
// can make this run out; then the reader is stopped and output may be short.
constexpr DWORD kDrainTimeoutMs = 2000;
// The exit code given to processes terminated through the job.
constexpr UINT kTerminatedExitCode = 1;
// Reported as term_signal for a child ended by Kill() (SIGKILL's number).
constexpr int kTerminatedSignal = 9;

class UniqueHandle {
 public:
  UniqueHandle() = default;
  explicit UniqueHandle(HANDLE handle)
      : handle_(handle == INVALID_HANDLE_VALUE ? nullptr : handle) {}
  ~UniqueHandle() { reset(); }
  UniqueHandle(UniqueHandle&& other) noexcept
      : handle_(std::exchange(other.handle_, nullptr)) {}
  UniqueHandle& operator=(UniqueHandle&& other) noexcept {
    if (this != &other) reset(std::exchange(other.handle_, nullptr));
    return *this;
  }
  UniqueHandle(const UniqueHandle&) = delete;
  UniqueHandle& operator=(const UniqueHandle&) = delete;

  HANDLE get() const { return handle_; }
  explicit operator bool() const { return handle_ != nullptr; }
  void reset(HANDLE handle = nullptr) {
    if (handle_ != nullptr) CloseHandle(handle_);
    handle_ = handle == INVALID_HANDLE_VALUE ? nullptr : handle;
  }

 private:
  HANDLE handle_ = nullptr;
};

// "<text> (error N)" for a Win32 error code.
std::string ErrorText(DWORD code) {
  wchar_t* buffer = nullptr;
  const DWORD n = FormatMessageW(
      FORMAT_MESSAGE_ALLOCATE_BUFFER | FORMAT_MESSAGE_FROM_SYSTEM |
          FORMAT_MESSAGE_IGNORE_INSERTS,
      nullptr, code, 0, reinterpret_cast<wchar_t*>(&buffer), 0, nullptr);
  std::wstring text;
  if (n != 0 && buffer != nullptr) text.assign(buffer, n);
  if (buffer != nullptr) LocalFree(buffer);
  while (!text.empty() && (std::iswspace(text.back()) || text.back() == L'.')) {
    text.pop_back();
  }
  if (text.empty()) text = L"unknown error";
  return WideToUtf8(text) + " (error " + std::to_string(code) + ")";
}

// "<what>: <text of GetLastError()>". Call right after the failing API.
std::string LastError(const std::string& what) {
  const DWORD code = GetLastError();
  return what + ": " + ErrorText(code);
}

std::wstring GetEnv(const wchar_t* name) {
  const DWORD size = GetEnvironmentVariableW(name, nullptr, 0);
  if (size == 0) return {};
  std::wstring value(size, L'\0');
  const DWORD n = GetEnvironmentVariableW(name, value.data(), size);
  value.resize(n < size ? n : 0);
  return value;
}

// Splits a ';'-separated list (PATH, PATHEXT), dropping empty items and the
// quotes PATH entries may carry.
std::vector<std::wstring> SplitList(const std::wstring& list) {
  std::vector<std::wstring> items;
  std::size_t begin = 0;
  while (begin <= list.size()) {
    std::size_t end = list.find(L';', begin);
    if (end == std::wstring::npos) end = list.size();
    std::wstring item = list.substr(begin, end - begin);
    std::erase(item, L'"');
    if (!item.empty()) items.push_back(std::move(item));
    begin = end + 1;
  }
  return items;
}

bool IsFile(const std::wstring& path) {
  const DWORD attributes = GetFileAttributesW(path.c_str());
  return attributes != INVALID_FILE_ATTRIBUTES &&
         (attributes & FILE_ATTRIBUTE_DIRECTORY) == 0;
}

std::wstring FullPath(const std::wstring& path) {
  const DWORD size = GetFullPathNameW(path.c_str(), 0, nullptr, nullptr);
  if (size == 0) return path;
  std::wstring full(size, L'\0');
  const DWORD n = GetFullPathNameW(path.c_str(), size, full.data(), nullptr);
  if (n == 0 || n >= size) return path;
  full.resize(n);
  return full;
}

// `base` as is if it has an extension, else `base` + each of `extensions`.
std::wstring FindWithExtensions(const std::wstring& base,
                                const std::vector<std::wstring>& extensions) {
  const std::size_t dot = base.rfind(L'.');
  const std::size_t sep = base.find_last_of(L"\\/:");
  const bool has_extension =
      dot != std::wstring::npos && (sep == std::wstring::npos || dot > sep);
  if (has_extension && IsFile(base)) return base;
  for (const std::wstring& extension : extensions) {
    if (IsFile(base + extension)) return base + extension;
  }
  return {};
}

// Whether this process has a console a child could share.
bool HasConsole() {
  DWORD pid = 0;
  return GetConsoleProcessList(&pid, 1) != 0;
}

// Reads the pipe into `out` until end-of-file, an error, or `stop` is set.
// The pipe is overlapped so that a read can be abandoned.
void ReadPipe(HANDLE pipe, HANDLE stop, OutputSink* out) {
  UniqueHandle io_done(CreateEventW(nullptr, TRUE, FALSE, nullptr));
  if (!io_done) return;
  std::vector<char> buffer(64 * 1024);
  for (;;) {
    OVERLAPPED overlapped{};
    overlapped.hEvent = io_done.get();
    if (!ReadFile(pipe, buffer.data(), static_cast<DWORD>(buffer.size()),
                  nullptr, &overlapped) &&
        GetLastError() != ERROR_IO_PENDING) {
      return;  // ERROR_BROKEN_PIPE: every write end is closed.
    }
    const HANDLE events[] = {io_done.get(), stop};
    const DWORD which = WaitForMultipleObjects(2, events, FALSE, INFINITE);
    DWORD n = 0;
    if (which != WAIT_OBJECT_0) {
      CancelIoEx(pipe, &overlapped);
      if (GetOverlappedResult(pipe, &overlapped, &n, TRUE)) {
        out->Append(buffer.data(), n);
      }
      return;
    }
    if (!GetOverlappedResult(pipe, &overlapped, &n, FALSE)) return;
    out->Append(buffer.data(), n);
  }
}

// Creates the output pipe: an overlapped read end for us and an inheritable,
// synchronous write end for the child.
bool CreateOutputPipe(UniqueHandle* read_end, UniqueHandle* write_end,
                      std::string* error) {
  static std::atomic<std::uint64_t> counter{0};
  const std::wstring name = L"\\\\.\\pipe\\labtrace-subprocess-" +
                            std::to_wstring(GetCurrentProcessId()) + L"-" +
                            std::to_wstring(counter.fetch_add(1));
  read_end->reset(CreateNamedPipeW(name.c_str(),
                                   PIPE_ACCESS_INBOUND | FILE_FLAG_OVERLAPPED |
                                       FILE_FLAG_FIRST_PIPE_INSTANCE,
                                   PIPE_TYPE_BYTE | PIPE_READMODE_BYTE |
                                       PIPE_WAIT | PIPE_REJECT_REMOTE_CLIENTS,
                                   1, 0, 64 * 1024, 0, nullptr));
  if (!*read_end) {
    *error = LastError("CreateNamedPipeW");
    return false;
  }
  SECURITY_ATTRIBUTES inherit{sizeof(SECURITY_ATTRIBUTES), nullptr, TRUE};
  *write_end = UniqueHandle(CreateFileW(name.c_str(),
                                        GENERIC_WRITE | FILE_READ_ATTRIBUTES, 0,
                                        &inherit, OPEN_EXISTING, 0, nullptr));
  if (!*write_end) {
    *error = LastError("CreateFileW(pipe)");
    read_end->reset();
    return false;
  }
  return true;
}

Result NotStartedResult() {
  Result result;
  result.outcome = Outcome::kSpawnFailed;
  result.error = "process was never started";
  return result;
}

}  // namespace

struct Process::Impl {
  UniqueHandle process;
  UniqueHandle job;
  UniqueHandle pipe;         // Read end of the output pipe.
  UniqueHandle stop_reader;  // Set to make the reader give up.
  UniqueHandle reader_done;  // Set by the reader when it returns.
  std::thread reader;
  OutputSink output;
  DWORD pid = 0;
  bool started = false;
  std::atomic<bool> running{false};
  std::chrono::steady_clock::time_point start_time;
  std::optional<Result> result;  // Set once the child has been reaped.

  ~Impl() {
    if (running) Kill(false);
    StopReader();
  }

  bool Start(const Options& options, std::string* error);
  Result Kill(bool as_timeout);
  Result Finish(bool killed, bool as_timeout);
  void StopReader();
};

bool Process::Impl::Start(const Options& options, std::string* error) {
  if (options.argv.empty()) {
    *error = "empty argv";
    return false;
  }
  const std::string program = FindProgram(options.argv[0]);
  if (program.empty()) {
    *error = "executable not found: " + options.argv[0];
    return false;
  }
  std::vector<std::wstring> wide_argv;
  for (const std::string& arg : options.argv) {
    wide_argv.push_back(Utf8ToWide(arg));
  }
  const std::wstring line = internal::BuildWindowsCommandLine(wide_argv);
  if (line.size() >= 32767) {
    *error = "command line too long (" + std::to_string(line.size()) +
             " characters, Windows allows 32766)";
    return false;
  }
  std::vector<wchar_t> line_buffer(line.begin(), line.end());
  line_buffer.push_back(L'\0');  // CreateProcessW may write to the buffer.

  std::wstring environment;
  if (!options.extra_env.empty()) {
    wchar_t* parent = GetEnvironmentStringsW();
    const bool ok = internal::MergeEnvironmentBlock(parent, options.extra_env,
                                                    &environment, error);
    if (parent != nullptr) FreeEnvironmentStringsW(parent);
    if (!ok) return false;
  }
  const std::wstring working_dir = Utf8ToWide(options.working_dir);

  UniqueHandle write_end;
  if (!CreateOutputPipe(&pipe, &write_end, error)) return false;
  SECURITY_ATTRIBUTES inherit{sizeof(SECURITY_ATTRIBUTES), nullptr, TRUE};
  UniqueHandle null_input(CreateFileW(L"NUL", GENERIC_READ,
                                      FILE_SHARE_READ | FILE_SHARE_WRITE,
                                      &inherit, OPEN_EXISTING, 0, nullptr));
  if (!null_input) {
    *error = LastError("CreateFileW(NUL)");
    return false;
  }

  job.reset(CreateJobObjectW(nullptr, nullptr));
  if (!job) {
    *error = LastError("CreateJobObjectW");
    return false;
  }
  JOBOBJECT_EXTENDED_LIMIT_INFORMATION limits{};
  limits.BasicLimitInformation.LimitFlags = JOB_OBJECT_LIMIT_KILL_ON_JOB_CLOSE;
  if (!SetInformationJobObject(job.get(), JobObjectExtendedLimitInformation,
                               &limits, sizeof(limits))) {
    *error = LastError("SetInformationJobObject");
    return false;
  }

  // Inherit exactly the two handles the child needs.
  SIZE_T attributes_size = 0;
  InitializeProcThreadAttributeList(nullptr, 1, 0, &attributes_size);
  std::vector<unsigned char> attributes_storage(attributes_size);
  auto* attributes =
      reinterpret_cast<LPPROC_THREAD_ATTRIBUTE_LIST>(attributes_storage.data());
  if (!InitializeProcThreadAttributeList(attributes, 1, 0, &attributes_size)) {
    *error = LastError("InitializeProcThreadAttributeList");
    return false;
  }
  HANDLE inherited[] = {write_end.get(), null_input.get()};
  if (!UpdateProcThreadAttribute(attributes, 0,
                                 PROC_THREAD_ATTRIBUTE_HANDLE_LIST, inherited,
                                 sizeof(inherited), nullptr, nullptr)) {
    *error = LastError("UpdateProcThreadAttribute");
    DeleteProcThreadAttributeList(attributes);
    return false;
  }

  STARTUPINFOEXW startup{};
  startup.StartupInfo.cb = sizeof(startup);
  startup.StartupInfo.dwFlags = STARTF_USESTDHANDLES;
  startup.StartupInfo.hStdInput = null_input.get();
  startup.StartupInfo.hStdOutput = write_end.get();
  startup.StartupInfo.hStdError = write_end.get();
  startup.lpAttributeList = attributes;
  DWORD flags = CREATE_UNICODE_ENVIRONMENT | CREATE_NEW_PROCESS_GROUP |
                CREATE_SUSPENDED | EXTENDED_STARTUPINFO_PRESENT;
  if (!HasConsole()) flags |= CREATE_NO_WINDOW;

  if (!output.Reset(options.output_cap, options.output_path, error,
                    options.output_file_cap)) {
    return false;
  }
  start_time = std::chrono::steady_clock::now();
  PROCESS_INFORMATION info{};
  const std::wstring application = Utf8ToWide(program);
  const BOOL created = CreateProcessW(
      application.c_str(), line_buffer.data(), nullptr, nullptr, TRUE, flags,
      environment.empty() ? nullptr : environment.data(),
      working_dir.empty() ? nullptr : working_dir.c_str(), &startup.StartupInfo,
      &info);
  if (!created) {
    *error = LastError("CreateProcessW(" + program +
                       (options.working_dir.empty()
                            ? ""
                            : ", working_dir " + options.working_dir) +
                       ")");
  }
  DeleteProcThreadAttributeList(attributes);
  if (!created) return false;
  // Only the child may hold the write end: the pipe ends when it is gone.
  write_end.reset();
  null_input.reset();
  process.reset(info.hProcess);
  UniqueHandle thread(info.hThread);
  pid = info.dwProcessId;

  if (!AssignProcessToJobObject(job.get(), process.get())) {
    *error = LastError("AssignProcessToJobObject");
    TerminateProcess(process.get(), kTerminatedExitCode);
    WaitForSingleObject(process.get(), INFINITE);
    process.reset();
    return false;
  }
  if (ResumeThread(thread.get()) == static_cast<DWORD>(-1)) {
    *error = LastError("ResumeThread");
    TerminateJobObject(job.get(), kTerminatedExitCode);
    WaitForSingleObject(process.get(), INFINITE);
    process.reset();
    return false;
  }

  stop_reader.reset(CreateEventW(nullptr, TRUE, FALSE, nullptr));
  reader_done.reset(CreateEventW(nullptr, TRUE, FALSE, nullptr));
  started = true;
  running = true;
  if (!stop_reader || !reader_done) {
    *error = LastError("CreateEventW");
    Kill(false);
    return false;
  }
  reader = std::thread([this] {
    ReadPipe(pipe.get(), stop_reader.get(), &output);
    SetEvent(reader_done.get());
  });
  return true;
}

Result Process::Impl::Kill(bool as_timeout) {
  bool killed = false;
  if (WaitForSingleObject(process.get(), 0) == WAIT_TIMEOUT) {
    if (!TerminateJobObject(job.get(), kTerminatedExitCode)) {
      TerminateProcess(process.get(), kTerminatedExitCode);
    }
    WaitForSingleObject(process.get(), INFINITE);
    killed = true;
  }
  return Finish(killed, as_timeout);
}

// Reaps a child that has exited: ends what it left in its job, drains the
// output and records the result.
Result Process::Impl::Finish(bool killed, bool as_timeout) {
  DWORD exit_code = 0;
  if (!GetExitCodeProcess(process.get(), &exit_code)) exit_code = 0;
  TerminateJobObject(job.get(), kTerminatedExitCode);
  StopReader();

  Result r;
  if (as_timeout) {
    r.outcome = Outcome::kTimedOut;
  } else if (killed) {
    r.outcome = Outcome::kSignaled;
    r.term_signal = kTerminatedSignal;
  } else {
    r.outcome = Outcome::kExited;
    r.exit_code = static_cast<int>(exit_code);
  }
  output.Close();
  r.output = output.Tail();
  r.output_truncated = output.truncated();
  r.output_bytes = output.total_bytes();
  r.output_file_error = output.file_error();
  r.elapsed = std::chrono::duration_cast<milliseconds>(
      std::chrono::steady_clock::now() - start_time);

  process.reset();
  job.reset();
  pipe.reset();
  stop_reader.reset();
  reader_done.reset();
  running = false;
  result = r;
  return r;
}

void Process::Impl::StopReader() {
  if (!reader.joinable()) return;
  if (WaitForSingleObject(reader_done.get(), kDrainTimeoutMs) !=
      WAIT_OBJECT_0) {
    SetEvent(stop_reader.get());
  }
  reader.join();
}

Process::Process() : impl_(std::make_unique<Impl>()) {}
Process::~Process() = default;
Process::Process(Process&&) noexcept = default;
Process& Process::operator=(Process&&) noexcept = default;

bool Process::Start(const Options& options, std::string* error) {
  std::string ignored;
  if (error == nullptr) error = &ignored;
  if (!impl_) impl_ = std::make_unique<Impl>();
  if (impl_->started) {
    *error = "process already started";
    return false;
  }
  return impl_->Start(options, error);
}

std::optional<Result> Process::Wait(std::optional<milliseconds> timeout) {
  if (!impl_ || !impl_->started) return NotStartedResult();
  if (impl_->result) return impl_->result;
  DWORD wait_ms = INFINITE;
  if (timeout) {
    wait_ms = static_cast<DWORD>(
        std::clamp<std::int64_t>(timeout->count(), 0, INFINITE - 1));
  }
  if (WaitForSingleObject(impl_->process.get(), wait_ms) == WAIT_TIMEOUT) {
    return std::nullopt;
  }
  return impl_->Finish(/*killed=*/false, /*as_timeout=*/false);
}

bool Process::Interrupt() {
  if (!impl_ || !impl_->running) return false;
  // Reaches the child only if it shares our console (see the file comment).
  return GenerateConsoleCtrlEvent(CTRL_BREAK_EVENT, impl_->pid) != 0;
}

Result Process::Kill(bool as_timeout) {
  if (!impl_ || !impl_->started) return NotStartedResult();
  if (impl_->result) return *impl_->result;
  return impl_->Kill(as_timeout);
}

bool Process::running() const { return impl_ && impl_->running; }

std::int64_t Process::pid() const {
  return impl_ && impl_->started ? static_cast<std::int64_t>(impl_->pid) : -1;
}

std::string Process::output() const {
  return impl_ ? impl_->output.Tail() : std::string();
}

Result Run(const Options& options) {
  const auto start = std::chrono::steady_clock::now();
  Process process;
  std::string error;
  if (!process.Start(options, &error)) {
    Result result;
    result.outcome = Outcome::kSpawnFailed;
    result.error = error;
    result.elapsed = std::chrono::duration_cast<milliseconds>(
        std::chrono::steady_clock::now() - start);
    return result;
  }
  std::optional<milliseconds> timeout;
  if (options.timeout > milliseconds(0)) timeout = options.timeout;
  if (std::optional<Result> result = process.Wait(timeout)) return *result;
  return process.Kill(/*as_timeout=*/true);
}

std::string FindProgram(const std::string& name) {
  if (name.empty()) return {};
  const std::wstring wide_name = Utf8ToWide(name);
  std::wstring pathext = GetEnv(L"PATHEXT");
  if (pathext.empty()) pathext = L".COM;.EXE;.BAT;.CMD";
  const std::vector<std::wstring> extensions = SplitList(pathext);

  std::wstring found;
  if (wide_name.find_first_of(L"\\/:") != std::wstring::npos) {
    found = FindWithExtensions(wide_name, extensions);
  } else {
    for (std::wstring dir : SplitList(GetEnv(L"PATH"))) {
      if (dir.back() != L'\\' && dir.back() != L'/') dir += L'\\';
      found = FindWithExtensions(dir + wide_name, extensions);
      if (!found.empty()) break;
    }
  }
  return found.empty() ? std::string() : WideToUtf8(FullPath(found));
}

bool ProcessExists(std::int64_t pid) {
  if (pid <= 0 || pid > static_cast<std::int64_t>(MAXDWORD)) return false;
  UniqueHandle process(
      OpenProcess(PROCESS_QUERY_LIMITED_INFORMATION | SYNCHRONIZE, FALSE,
                  static_cast<DWORD>(pid)));
  if (!process) return GetLastError() == ERROR_ACCESS_DENIED;
  DWORD exit_code = 0;
  if (GetExitCodeProcess(process.get(), &exit_code) &&
      exit_code != STILL_ACTIVE) {
    return false;
  }
  // STILL_ACTIVE may also be a real exit code (259): ask the handle.
  return WaitForSingleObject(process.get(), 0) == WAIT_TIMEOUT;
}

std::string ProcessStartId(std::int64_t pid) {
  if (pid <= 0) return "";
  UniqueHandle h(OpenProcess(PROCESS_QUERY_LIMITED_INFORMATION, FALSE,
                             static_cast<DWORD>(pid)));
  if (!h) return "";
  FILETIME created{}, exited{}, kernel{}, user{};
  if (!GetProcessTimes(h.get(), &created, &exited, &kernel, &user)) return "";
  const std::uint64_t t =
      (static_cast<std::uint64_t>(created.dwHighDateTime) << 32) |
      created.dwLowDateTime;
  return std::to_string(t);
}

bool KillProcessTree(std::int64_t pid) {
  if (pid <= 0) return false;
  // Children of the agent lived in its job object (kill-on-close), so they
  // died with it; this ends a single leftover process.
  UniqueHandle h(OpenProcess(PROCESS_TERMINATE, FALSE, static_cast<DWORD>(pid)));
  return h && TerminateProcess(h.get(), kTerminatedExitCode);
}

std::vector<std::string> ProcessArgv(std::int64_t) { return {}; }

std::vector<std::int64_t> FindProcesses(
    const std::function<bool(const std::vector<std::string>&)>&) {
  return {};
}

}  // namespace labtrace::subprocess
