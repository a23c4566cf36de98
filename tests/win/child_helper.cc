// A tiny child program for tests/win/subprocess_win_test.cc. It runs its
// arguments as a list of commands, in order:
//   say TEXT        write TEXT and "\n" to stdout
//   err TEXT        write TEXT and "\n" to stderr
//   print N         write N bytes of "0123456789" repeated to stdout
//   env NAME        write "NAME=value" or "NAME unset"
//   cwd             write the working directory
//   pid             write "pid N" with its own process id
//   handle N        if N (decimal) is a handle to a signaled object here
//                   (the test's inheritable event) write "handle N inherited",
//                   else write "handle N absent" and exit with code 10
//   sleep MS        sleep MS milliseconds
//   spawn-sleeper MS  start "child_helper sleep MS" (inheriting stdout, so it
//                   holds the output pipe) and write "grandchild N"
//   wait-break      write "ready", then on CTRL_BREAK write "break", exit 42
//   exit N          exit with code N
//   args ...        write each remaining argument hex-encoded (UTF-8) as
//                   "arg:HEX" on its own line; this ends the command list
// Output is written with WriteFile, unbuffered and without "\r\n"
// translation. Without an exit command it exits 0.

#ifndef WIN32_LEAN_AND_MEAN
#define WIN32_LEAN_AND_MEAN
#endif
#include <windows.h>

#include <cstdint>
#include <cwchar>
#include <string>
#include <vector>

namespace {

std::string ToUtf8(const std::wstring& wide) {
  if (wide.empty()) return {};
  const int n = WideCharToMultiByte(CP_UTF8, 0, wide.data(),
                                    static_cast<int>(wide.size()), nullptr, 0,
                                    nullptr, nullptr);
  std::string utf8(n, '\0');
  WideCharToMultiByte(CP_UTF8, 0, wide.data(), static_cast<int>(wide.size()),
                      utf8.data(), n, nullptr, nullptr);
  return utf8;
}

void Write(DWORD which, const std::string& text) {
  const HANDLE handle = GetStdHandle(which);
  std::size_t done = 0;
  while (done < text.size()) {
    DWORD n = 0;
    if (!WriteFile(handle, text.data() + done,
                   static_cast<DWORD>(text.size() - done), &n, nullptr)) {
      ExitProcess(99);
    }
    done += n;
  }
}

void Out(const std::string& text) { Write(STD_OUTPUT_HANDLE, text); }

BOOL WINAPI OnCtrl(DWORD event) {
  if (event != CTRL_BREAK_EVENT) return FALSE;
  Out("break\n");
  ExitProcess(42);
}

void SpawnSleeper(const std::wstring& ms) {
  wchar_t self[MAX_PATH];
  GetModuleFileNameW(nullptr, self, MAX_PATH);
  std::wstring line = L"\"" + std::wstring(self) + L"\" sleep " + ms;
  STARTUPINFOW startup{};
  startup.cb = sizeof(startup);
  PROCESS_INFORMATION info{};
  if (!CreateProcessW(self, line.data(), nullptr, nullptr, TRUE, 0, nullptr,
                      nullptr, &startup, &info)) {
    Out("spawn failed\n");
    ExitProcess(98);
  }
  Out("grandchild " + std::to_string(info.dwProcessId) + "\n");
  CloseHandle(info.hThread);
  CloseHandle(info.hProcess);
}

}  // namespace

int wmain(int argc, wchar_t** argv) {
  for (int i = 1; i < argc; ++i) {
    const std::wstring command = argv[i];
    const std::wstring arg = i + 1 < argc ? argv[i + 1] : L"";
    if (command == L"args") {
      static const char kHex[] = "0123456789abcdef";
      for (++i; i < argc; ++i) {
        std::string hex;
        for (unsigned char c : ToUtf8(argv[i])) {
          hex += kHex[c >> 4];
          hex += kHex[c & 15];
        }
        Out("arg:" + hex + "\n");
      }
      break;
    }
    if (command == L"say") {
      Out(ToUtf8(arg) + "\n");
      ++i;
    } else if (command == L"err") {
      Write(STD_ERROR_HANDLE, ToUtf8(arg) + "\n");
      ++i;
    } else if (command == L"print") {
      const long long n = std::wcstoll(arg.c_str(), nullptr, 10);
      std::string bytes;
      for (long long k = 0; k < n; ++k)
        bytes += static_cast<char>('0' + k % 10);
      Out(bytes);
      ++i;
    } else if (command == L"env") {
      wchar_t value[32768];
      SetLastError(ERROR_SUCCESS);
      const DWORD n = GetEnvironmentVariableW(arg.c_str(), value, 32768);
      Out(ToUtf8(arg) + (n == 0 && GetLastError() == ERROR_ENVVAR_NOT_FOUND
                             ? " unset\n"
                             : "=" + ToUtf8(std::wstring(value, n)) + "\n"));
      ++i;
    } else if (command == L"cwd") {
      wchar_t dir[MAX_PATH];
      const DWORD n = GetCurrentDirectoryW(MAX_PATH, dir);
      Out(ToUtf8(std::wstring(dir, n)) + "\n");
    } else if (command == L"handle") {
      const auto value =
          static_cast<std::uintptr_t>(std::wcstoull(arg.c_str(), nullptr, 10));
      const bool inherited =
          WaitForSingleObject(reinterpret_cast<HANDLE>(value), 0) ==
          WAIT_OBJECT_0;
      Out("handle " + ToUtf8(arg) + (inherited ? " inherited\n" : " absent\n"));
      if (!inherited) return 10;
      ++i;
    } else if (command == L"pid") {
      Out("pid " + std::to_string(GetCurrentProcessId()) + "\n");
    } else if (command == L"sleep") {
      Sleep(static_cast<DWORD>(std::wcstoul(arg.c_str(), nullptr, 10)));
      ++i;
    } else if (command == L"spawn-sleeper") {
      SpawnSleeper(arg);
      ++i;
    } else if (command == L"wait-break") {
      SetConsoleCtrlHandler(OnCtrl, TRUE);
      Out("ready\n");
      Sleep(60000);
      Out("no break\n");
      return 3;
    } else if (command == L"exit") {
      return static_cast<int>(std::wcstol(arg.c_str(), nullptr, 10));
    } else {
      Out("unknown command: " + ToUtf8(command) + "\n");
      return 97;
    }
  }
  return 0;
}
