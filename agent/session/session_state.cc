#include "agent/session/session_state.h"

namespace labtrace::agent {

bool IsValidTransition(SessionState from, SessionState to) {
  switch (from) {
    case SessionState::kStarting:
      // CANCELLED: a synchronised start withdrawn before its instant.
      return to == SessionState::kRunning || to == SessionState::kFailed ||
             to == SessionState::kCancelled;
    case SessionState::kRunning:
      return to == SessionState::kStopping || to == SessionState::kCancelling ||
             to == SessionState::kFailed;
    case SessionState::kStopping:
      return to == SessionState::kCompleted || to == SessionState::kFailed;
    case SessionState::kCancelling:
      return to == SessionState::kCancelled || to == SessionState::kFailed;
    case SessionState::kCompleted:
    case SessionState::kCancelled:
    case SessionState::kFailed:
      // Final: nothing follows. (A second stop of a completed session is
      // answered from the finished session, not by a transition.)
      return false;
  }
  return false;
}

bool IsFinal(SessionState state) {
  switch (state) {
    case SessionState::kCompleted:
    case SessionState::kCancelled:
    case SessionState::kFailed:
      return true;
    case SessionState::kStarting:
    case SessionState::kRunning:
    case SessionState::kStopping:
    case SessionState::kCancelling:
      return false;
  }
  return false;
}

const char* StateName(SessionState state) {
  switch (state) {
    case SessionState::kStarting:
      return "STARTING";
    case SessionState::kRunning:
      return "RUNNING";
    case SessionState::kStopping:
      return "STOPPING";
    case SessionState::kCompleted:
      return "COMPLETED";
    case SessionState::kCancelling:
      return "CANCELLING";
    case SessionState::kCancelled:
      return "CANCELLED";
    case SessionState::kFailed:
      return "FAILED";
  }
  return "UNKNOWN";
}

v1::TraceState ToProto(SessionState state) {
  switch (state) {
    case SessionState::kStarting:
      return v1::TRACE_STATE_STARTING;
    case SessionState::kRunning:
      return v1::TRACE_STATE_RUNNING;
    case SessionState::kStopping:
      return v1::TRACE_STATE_STOPPING;
    case SessionState::kCompleted:
      return v1::TRACE_STATE_COMPLETED;
    case SessionState::kCancelling:
      return v1::TRACE_STATE_CANCELLING;
    case SessionState::kCancelled:
      return v1::TRACE_STATE_CANCELLED;
    case SessionState::kFailed:
      return v1::TRACE_STATE_FAILED;
  }
  return v1::TRACE_STATE_UNSPECIFIED;
}

SessionState FromProto(v1::TraceState state) {
  switch (state) {
    case v1::TRACE_STATE_STARTING:
      return SessionState::kStarting;
    case v1::TRACE_STATE_RUNNING:
      return SessionState::kRunning;
    case v1::TRACE_STATE_STOPPING:
      return SessionState::kStopping;
    case v1::TRACE_STATE_COMPLETED:
      return SessionState::kCompleted;
    case v1::TRACE_STATE_CANCELLING:
      return SessionState::kCancelling;
    case v1::TRACE_STATE_CANCELLED:
      return SessionState::kCancelled;
    default:  // FAILED, UNSPECIFIED and proto's sentinel values.
      return SessionState::kFailed;
  }
}

}  // namespace labtrace::agent
