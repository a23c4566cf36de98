// The ETW (Event Tracing for Windows) sessions running on this machine, by
// name: what `logman query -ets` lists. WPR names its sessions
// "WPR_initiated_<instance>_<collector>", so this is how a restarted agent
// finds WPR instances of its own that no journal entry explains.
//
// Platform layer: standard library and OS API only (etw_sessions_win.cc:
// QueryAllTracesW; etw_sessions_posix.cc: no ETW, an empty list).

#ifndef LABTRACE_COMMON_ETW_SESSIONS_H_
#define LABTRACE_COMMON_ETW_SESSIONS_H_

#include <string>
#include <vector>

namespace labtrace::etw {

// Fills *names (UTF-8) with the running sessions. False with *error if the
// query failed (e.g. no permission: it needs administrator rights or the
// Performance Log Users group).
bool ListSessions(std::vector<std::string>* names, std::string* error);

}  // namespace labtrace::etw

#endif  // LABTRACE_COMMON_ETW_SESSIONS_H_
