// Windows implementation of common/host_info.h.

#include <windows.h>
// psapi.h needs windows.h first.
#include <psapi.h>

#include <string>

#include "common/host_info.h"

namespace labtrace {
namespace {

std::string Narrow(const wchar_t* w) {
  int n = WideCharToMultiByte(CP_UTF8, 0, w, -1, nullptr, 0, nullptr, nullptr);
  if (n <= 1) return {};
  std::string out(static_cast<std::size_t>(n - 1), '\0');
  WideCharToMultiByte(CP_UTF8, 0, w, -1, out.data(), n, nullptr, nullptr);
  return out;
}

}  // namespace

std::string HostName() {
  wchar_t buf[256] = {};
  DWORD size = 255;
  if (!GetComputerNameExW(ComputerNameDnsHostname, buf, &size))
    return "unknown";
  return Narrow(buf);
}

std::string OsDescription() {
  // GetVersionEx lies without a manifest; RtlGetVersion tells the truth.
  using RtlGetVersionFn = LONG(WINAPI*)(OSVERSIONINFOW*);
  OSVERSIONINFOW v = {};
  v.dwOSVersionInfoSize = sizeof(v);
  HMODULE ntdll = GetModuleHandleW(L"ntdll.dll");
  auto fn = ntdll != nullptr
                ? reinterpret_cast<RtlGetVersionFn>(reinterpret_cast<void*>(
                      GetProcAddress(ntdll, "RtlGetVersion")))
                : nullptr;
  if (fn == nullptr || fn(&v) != 0) return "Windows";
  SYSTEM_INFO si;
  GetNativeSystemInfo(&si);
  const char* arch =
      si.wProcessorArchitecture == PROCESSOR_ARCHITECTURE_AMD64   ? "x64"
      : si.wProcessorArchitecture == PROCESSOR_ARCHITECTURE_ARM64 ? "arm64"
                                                                  : "x86";
  return "Windows " + std::to_string(v.dwMajorVersion) + "." +
         std::to_string(v.dwMinorVersion) + "." +
         std::to_string(v.dwBuildNumber) + " " + arch;
}

std::uint64_t ResidentBytes() {
  PROCESS_MEMORY_COUNTERS pmc = {};
  if (!GetProcessMemoryInfo(GetCurrentProcess(), &pmc, sizeof(pmc))) return 0;
  return pmc.WorkingSetSize;
}

std::int64_t CurrentPid() {
  return static_cast<std::int64_t>(GetCurrentProcessId());
}

}  // namespace labtrace
