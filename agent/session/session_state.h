// The trace session state machine:
//
//   STARTING -> RUNNING -> STOPPING -> COMPLETED
//               RUNNING -> CANCELLING -> CANCELLED
//   any active state -> FAILED (with a reason)
//
// One enum, one transition check, used by SessionManager for every change.

#ifndef LABTRACE_AGENT_SESSION_SESSION_STATE_H_
#define LABTRACE_AGENT_SESSION_SESSION_STATE_H_

#include "absl/strings/string_view.h"
#include "labtrace/v1/agent.pb.h"

namespace labtrace::agent {

enum class SessionState {
  kStarting,
  kRunning,
  kStopping,
  kCompleted,
  kCancelling,
  kCancelled,
  kFailed,
};

// True if a session may move from `from` to `to`.
bool IsValidTransition(SessionState from, SessionState to);

// True for COMPLETED, CANCELLED and FAILED.
bool IsFinal(SessionState state);

// "RUNNING", ...
const char* StateName(SessionState state);

v1::TraceState ToProto(SessionState state);
SessionState FromProto(v1::TraceState state);

}  // namespace labtrace::agent

#endif  // LABTRACE_AGENT_SESSION_SESSION_STATE_H_
