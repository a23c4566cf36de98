// Windows implementation of common/etw_sessions.h on QueryAllTracesW.

#include <windows.h>
// evntrace.h needs windows.h (and wmistr.h through it) first.
#include <evntrace.h>

#include <cstddef>
#include <cstring>
#include <cwchar>

#include "common/etw_sessions.h"
#include "common/subprocess_win_internal.h"

namespace labtrace::etw {
namespace {

// Windows allows 64 sessions by default and at most a few hundred; 256 slots
// cover every configuration seen in practice (ERROR_MORE_DATA otherwise).
constexpr ULONG kMaxSessions = 256;
constexpr std::size_t kNameChars = 1024;

struct Slot {
  EVENT_TRACE_PROPERTIES properties;
  wchar_t logger_name[kNameChars];
  wchar_t log_file_name[kNameChars];
};

}  // namespace

bool ListSessions(std::vector<std::string>* names, std::string* error) {
  names->clear();
  std::vector<Slot> slots(kMaxSessions);
  std::vector<EVENT_TRACE_PROPERTIES*> pointers(kMaxSessions);
  for (ULONG i = 0; i < kMaxSessions; ++i) {
    Slot& s = slots[i];
    std::memset(&s, 0, sizeof(s));
    s.properties.Wnode.BufferSize = sizeof(Slot);
    s.properties.LoggerNameOffset = offsetof(Slot, logger_name);
    s.properties.LogFileNameOffset = offsetof(Slot, log_file_name);
    pointers[i] = &s.properties;
  }
  ULONG count = 0;
  const ULONG rc = QueryAllTracesW(pointers.data(), kMaxSessions, &count);
  if (rc != ERROR_SUCCESS && rc != ERROR_MORE_DATA) {
    *error = "QueryAllTracesW failed with error " + std::to_string(rc) +
             (rc == ERROR_ACCESS_DENIED
                  ? " (access denied: needs administrator rights)"
                  : "");
    return false;
  }
  for (ULONG i = 0; i < count && i < kMaxSessions; ++i) {
    slots[i].logger_name[kNameChars - 1] = L'\0';
    names->push_back(
        subprocess::internal::WideToUtf8(slots[i].logger_name));
  }
  return true;
}

}  // namespace labtrace::etw
