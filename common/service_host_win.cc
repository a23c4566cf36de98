// Windows implementation of common/service_host.h on the Service Control
// Manager API. One service per process (SERVICE_WIN32_OWN_PROCESS); the
// SCM's dispatcher thread is the thread that called Run().

#include <windows.h>

#include <atomic>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <thread>

#include "common/service_host.h"
#include "common/subprocess_win_internal.h"

namespace labtrace::service_host {
namespace {

using subprocess::internal::QuoteWindowsArg;
using subprocess::internal::Utf8ToWide;
using subprocess::internal::WideToUtf8;

// How often a pending stop re-reports itself, and the wait hint it gives.
constexpr DWORD kPendingReportMs = 5000;
constexpr DWORD kPendingWaitHintMs = 30000;
// Service-specific exit code of a failed start (the reason is in the log).
constexpr DWORD kStartFailedCode = 1;

std::string OsError(const std::string& what, DWORD code) {
  wchar_t* text = nullptr;
  const DWORD n = FormatMessageW(
      FORMAT_MESSAGE_ALLOCATE_BUFFER | FORMAT_MESSAGE_FROM_SYSTEM |
          FORMAT_MESSAGE_IGNORE_INSERTS,
      nullptr, code, 0, reinterpret_cast<wchar_t*>(&text), 0, nullptr);
  std::string msg = n > 0 && text != nullptr
                        ? WideToUtf8(std::wstring(text, n))
                        : std::string("Windows error");
  if (text != nullptr) LocalFree(text);
  while (!msg.empty() &&
         (msg.back() == '\n' || msg.back() == '\r' || msg.back() == ' ' ||
          msg.back() == '.')) {
    msg.pop_back();
  }
  return what + ": " + msg + " (error " + std::to_string(code) + ")";
}

struct ScHandle {
  SC_HANDLE h = nullptr;
  explicit ScHandle(SC_HANDLE handle) : h(handle) {}
  ~ScHandle() {
    if (h != nullptr) CloseServiceHandle(h);
  }
  ScHandle(const ScHandle&) = delete;
  ScHandle& operator=(const ScHandle&) = delete;
  explicit operator bool() const { return h != nullptr; }
};

std::wstring ThisExecutable() {
  std::wstring buf(MAX_PATH, L'\0');
  for (;;) {
    const DWORD n = GetModuleFileNameW(nullptr, buf.data(),
                                       static_cast<DWORD>(buf.size()));
    if (n < buf.size()) {
      buf.resize(n);
      return buf;
    }
    buf.resize(buf.size() * 2);
  }
}

// ---- The running service (one per process) ---------------------------------

struct Running {
  std::wstring name;
  const Callbacks* callbacks = nullptr;
  SERVICE_STATUS_HANDLE status_handle = nullptr;
  std::mutex mu;
  std::condition_variable cv;
  SERVICE_STATUS status{};
  bool stop_requested = false;
  bool stopped = false;
  std::thread pending_reporter;
  std::string error;  // Set if the dispatcher could not run the service.
};
Running* g_running = nullptr;

void ReportLocked(Running& r, DWORD state, DWORD exit_code = NO_ERROR,
                  DWORD specific_code = 0) {
  r.status.dwServiceType = SERVICE_WIN32_OWN_PROCESS;
  r.status.dwCurrentState = state;
  r.status.dwControlsAccepted =
      state == SERVICE_RUNNING ? SERVICE_ACCEPT_STOP | SERVICE_ACCEPT_PRESHUTDOWN
                               : 0;
  r.status.dwWin32ExitCode = specific_code != 0
                                 ? static_cast<DWORD>(ERROR_SERVICE_SPECIFIC_ERROR)
                                 : exit_code;
  r.status.dwServiceSpecificExitCode = specific_code;
  const bool pending =
      state == SERVICE_START_PENDING || state == SERVICE_STOP_PENDING;
  r.status.dwWaitHint = pending ? kPendingWaitHintMs : 0;
  r.status.dwCheckPoint = pending ? r.status.dwCheckPoint + 1 : 0;
  SetServiceStatus(r.status_handle, &r.status);
}

DWORD WINAPI OnControl(DWORD control, DWORD, void*, void* context) {
  Running& r = *static_cast<Running*>(context);
  std::string why;
  switch (control) {
    case SERVICE_CONTROL_STOP:
      why = "service stop";
      break;
    case SERVICE_CONTROL_PRESHUTDOWN:
    case SERVICE_CONTROL_SHUTDOWN:
      why = "system shutdown";
      break;
    case SERVICE_CONTROL_INTERROGATE:
      return NO_ERROR;
    default:
      return ERROR_CALL_NOT_IMPLEMENTED;
  }
  {
    std::lock_guard<std::mutex> lock(r.mu);
    if (r.stop_requested || r.stopped) return NO_ERROR;
    r.stop_requested = true;
    ReportLocked(r, SERVICE_STOP_PENDING);
    // Keep the SCM informed while the stop takes its time.
    r.pending_reporter = std::thread([&r] {
      std::unique_lock<std::mutex> lock(r.mu);
      while (!r.stopped) {
        if (r.cv.wait_for(lock, std::chrono::milliseconds(kPendingReportMs),
                          [&r] { return r.stopped; })) {
          break;
        }
        ReportLocked(r, SERVICE_STOP_PENDING);
      }
    });
  }
  r.callbacks->request_stop(why);
  return NO_ERROR;
}

void WINAPI ServiceMain(DWORD, wchar_t**) {
  Running& r = *g_running;
  r.status_handle =
      RegisterServiceCtrlHandlerExW(r.name.c_str(), OnControl, &r);
  if (r.status_handle == nullptr) {
    r.error = OsError("RegisterServiceCtrlHandlerExW", GetLastError());
    return;
  }
  {
    std::lock_guard<std::mutex> lock(r.mu);
    ReportLocked(r, SERVICE_START_PENDING);
  }
  std::string error;
  if (!r.callbacks->start(&error)) {
    LogEvent(WideToUtf8(r.name), true, "cannot start: " + error);
    std::lock_guard<std::mutex> lock(r.mu);
    r.stopped = true;
    ReportLocked(r, SERVICE_STOPPED, NO_ERROR, kStartFailedCode);
    return;
  }
  {
    std::lock_guard<std::mutex> lock(r.mu);
    if (!r.stop_requested) ReportLocked(r, SERVICE_RUNNING);
  }
  const int code = r.callbacks->wait();
  std::thread reporter;
  {
    std::lock_guard<std::mutex> lock(r.mu);
    r.stopped = true;
    reporter = std::move(r.pending_reporter);
  }
  r.cv.notify_all();
  if (reporter.joinable()) reporter.join();
  std::lock_guard<std::mutex> lock(r.mu);
  // After SERVICE_STOPPED the process may be ended at any moment.
  ReportLocked(r, SERVICE_STOPPED, NO_ERROR, static_cast<DWORD>(code));
}

}  // namespace

bool Supported(std::string*) { return true; }

bool Install(const InstallOptions& options, std::string* error) {
  std::wstring command_line = QuoteWindowsArg(ThisExecutable());
  if (command_line.front() != L'"') command_line = L"\"" + command_line + L"\"";
  for (const std::string& a : options.arguments) {
    command_line += L" " + QuoteWindowsArg(Utf8ToWide(a));
  }
  ScHandle scm(OpenSCManagerW(nullptr, nullptr, SC_MANAGER_ALL_ACCESS));
  if (!scm) {
    *error = OsError("OpenSCManagerW (run as administrator)", GetLastError());
    return false;
  }
  const std::wstring name = Utf8ToWide(options.name);
  const std::wstring display = Utf8ToWide(options.display_name);
  ScHandle service(CreateServiceW(
      scm.h, name.c_str(), display.c_str(), SERVICE_ALL_ACCESS,
      SERVICE_WIN32_OWN_PROCESS, SERVICE_AUTO_START, SERVICE_ERROR_NORMAL,
      command_line.c_str(), nullptr, nullptr, nullptr, nullptr, nullptr));
  if (!service && GetLastError() == ERROR_SERVICE_EXISTS) {
    service.h = OpenServiceW(scm.h, name.c_str(), SERVICE_ALL_ACCESS);
    if (!service ||
        !ChangeServiceConfigW(service.h, SERVICE_WIN32_OWN_PROCESS,
                              SERVICE_AUTO_START, SERVICE_ERROR_NORMAL,
                              command_line.c_str(), nullptr, nullptr, nullptr,
                              nullptr, nullptr, display.c_str())) {
      *error = OsError("updating the existing service", GetLastError());
      return false;
    }
  } else if (!service) {
    *error = OsError("CreateServiceW", GetLastError());
    return false;
  }
  std::wstring description = Utf8ToWide(options.description);
  SERVICE_DESCRIPTIONW desc{description.data()};
  ChangeServiceConfig2W(service.h, SERVICE_CONFIG_DESCRIPTION, &desc);
  SERVICE_PRESHUTDOWN_INFO preshutdown{
      static_cast<DWORD>(options.preshutdown_timeout.count() * 1000)};
  if (!ChangeServiceConfig2W(service.h, SERVICE_CONFIG_PRESHUTDOWN_INFO,
                             &preshutdown)) {
    *error = OsError("setting the preshutdown timeout", GetLastError());
    return false;
  }
  SC_ACTION actions[] = {{SC_ACTION_RESTART, 5000},
                         {SC_ACTION_RESTART, 5000},
                         {SC_ACTION_RESTART, 60000}};
  SERVICE_FAILURE_ACTIONSW failure{};
  failure.dwResetPeriod = 24 * 3600;
  failure.cActions = 3;
  failure.lpsaActions = actions;
  ChangeServiceConfig2W(service.h, SERVICE_CONFIG_FAILURE_ACTIONS, &failure);
  return true;
}

bool Uninstall(const std::string& name, std::chrono::seconds stop_timeout,
               const std::function<void(const std::string&)>& progress,
               std::string* error) {
  auto say = [&progress](const std::string& s) {
    if (progress) progress(s);
  };
  ScHandle scm(OpenSCManagerW(nullptr, nullptr, SC_MANAGER_CONNECT));
  if (!scm) {
    *error = OsError("OpenSCManagerW (run as administrator)", GetLastError());
    return false;
  }
  const std::wstring wname = Utf8ToWide(name);
  ScHandle service(OpenServiceW(scm.h, wname.c_str(),
                                SERVICE_STOP | SERVICE_QUERY_STATUS | DELETE));
  if (!service) {
    *error = OsError("OpenServiceW(" + name + ")", GetLastError());
    return false;
  }
  SERVICE_STATUS status{};
  if (QueryServiceStatus(service.h, &status) &&
      status.dwCurrentState != SERVICE_STOPPED) {
    say("stopping " + name + " (its active traces are stopped and kept)");
    if (!ControlService(service.h, SERVICE_CONTROL_STOP, &status) &&
        GetLastError() != ERROR_SERVICE_NOT_ACTIVE) {
      *error = OsError("stopping " + name, GetLastError());
      return false;
    }
    const auto deadline = std::chrono::steady_clock::now() + stop_timeout;
    while (QueryServiceStatus(service.h, &status) &&
           status.dwCurrentState != SERVICE_STOPPED) {
      if (std::chrono::steady_clock::now() > deadline) {
        *error = name + " did not stop within " +
                 std::to_string(stop_timeout.count()) + " s; not deleted";
        return false;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(250));
    }
  }
  if (!DeleteService(service.h)) {
    *error = OsError("DeleteService(" + name + ")", GetLastError());
    return false;
  }
  say("deleted service " + name);
  return true;
}

bool Run(const std::string& name, const Callbacks& callbacks,
         std::string* error) {
  auto running = std::make_unique<Running>();
  running->name = Utf8ToWide(name);
  running->callbacks = &callbacks;
  g_running = running.get();
  SERVICE_TABLE_ENTRYW table[] = {{running->name.data(), ServiceMain},
                                  {nullptr, nullptr}};
  const BOOL ok = StartServiceCtrlDispatcherW(table);
  const DWORD code = GetLastError();
  g_running = nullptr;
  if (!ok) {
    *error = code == ERROR_FAILED_SERVICE_CONTROLLER_CONNECT
                 ? "not started by the Service Control Manager: start the "
                   "service with `sc start " +
                       name + "`, or run the agent without `service run`"
                 : OsError("StartServiceCtrlDispatcherW", code);
    return false;
  }
  if (!running->error.empty()) {
    *error = running->error;
    return false;
  }
  return true;
}

void LogEvent(const std::string& name, bool is_error,
              const std::string& message) {
  HANDLE source = RegisterEventSourceW(nullptr, Utf8ToWide(name).c_str());
  if (source == nullptr) return;
  const std::wstring text = Utf8ToWide(message);
  const wchar_t* strings[] = {text.c_str()};
  ReportEventW(source,
               is_error ? EVENTLOG_ERROR_TYPE : EVENTLOG_INFORMATION_TYPE, 0,
               is_error ? 1 : 2, nullptr, 1, 0, strings, nullptr);
  DeregisterEventSource(source);
}

}  // namespace labtrace::service_host
