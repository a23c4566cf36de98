// Windows implementation of common/console.h: the wide command line for
// UTF-8 arguments, and SetConsoleCtrlHandler for stop requests (Ctrl-C,
// Ctrl-Break, console closed, logoff, system shutdown). The system calls the
// control handler on a new thread for every event, so a second Ctrl-C is seen
// while the first is handled.

#include <windows.h>
// shellapi.h needs windows.h first.
#include <io.h>
#include <shellapi.h>

#include <atomic>
#include <mutex>

#include "common/console.h"

namespace labtrace::console {
namespace {

std::string WideToUtf8(const wchar_t* w) {
  const int n =
      WideCharToMultiByte(CP_UTF8, 0, w, -1, nullptr, 0, nullptr, nullptr);
  if (n <= 1) return {};
  std::string out(static_cast<std::size_t>(n - 1), '\0');
  WideCharToMultiByte(CP_UTF8, 0, w, -1, out.data(), n, nullptr, nullptr);
  return out;
}

std::mutex g_mu;
std::function<void(const StopRequest&)>* g_handler = nullptr;  // Never freed.
std::atomic<int> g_count{0};

BOOL WINAPI OnConsoleControl(DWORD type) {
  StopRequest r;
  switch (type) {
    case CTRL_C_EVENT:
      r.what = "Ctrl-C";
      break;
    case CTRL_BREAK_EVENT:
      r.what = "Ctrl-Break";
      break;
    case CTRL_CLOSE_EVENT:
      r.what = "console closed";
      r.process_ending = true;
      break;
    case CTRL_LOGOFF_EVENT:
      r.what = "logoff";
      r.process_ending = true;
      break;
    case CTRL_SHUTDOWN_EVENT:
      r.what = "system shutdown";
      r.process_ending = true;
      break;
    default:
      return FALSE;  // Not ours: the next handler (or the default) decides.
  }
  std::function<void(const StopRequest&)>* handler;
  {
    std::lock_guard<std::mutex> lock(g_mu);
    handler = g_handler;
  }
  if (handler == nullptr) return FALSE;
  r.count = ++g_count;
  (*handler)(r);
  return TRUE;
}

}  // namespace

std::vector<std::string> Utf8Arguments(int argc, char** argv) {
  int wargc = 0;
  wchar_t** wargv = CommandLineToArgvW(GetCommandLineW(), &wargc);
  if (wargv == nullptr) return std::vector<std::string>(argv, argv + argc);
  std::vector<std::string> out;
  out.reserve(static_cast<std::size_t>(wargc));
  for (int i = 0; i < wargc; ++i) out.push_back(WideToUtf8(wargv[i]));
  LocalFree(wargv);
  return out;
}

std::vector<const char*> ArgvPointers(const std::vector<std::string>& args) {
  std::vector<const char*> out;
  out.reserve(args.size() + 1);
  for (const std::string& a : args) out.push_back(a.c_str());
  out.push_back(nullptr);
  return out;
}

bool IsTerminal(std::FILE* stream) { return _isatty(_fileno(stream)) != 0; }

void InstallStopHandler(std::function<void(const StopRequest&)> handler) {
  {
    std::lock_guard<std::mutex> lock(g_mu);
    g_handler = new std::function<void(const StopRequest&)>(std::move(handler));
  }
  SetConsoleCtrlHandler(OnConsoleControl, TRUE);
}

void RaiseFileLimit() {}

}  // namespace labtrace::console
