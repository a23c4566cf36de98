#include "agent/session/session_state.h"

#include "gtest/gtest.h"

namespace labtrace::agent {
namespace {

constexpr SessionState kAll[] = {
    SessionState::kStarting,   SessionState::kRunning,
    SessionState::kStopping,   SessionState::kCompleted,
    SessionState::kCancelling, SessionState::kCancelled,
    SessionState::kFailed};

TEST(SessionStateTest, ExactlyTheDocumentedTransitions) {
  std::set<std::pair<SessionState, SessionState>> allowed = {
      {SessionState::kStarting, SessionState::kRunning},
      {SessionState::kStarting, SessionState::kFailed},
      {SessionState::kStarting, SessionState::kCancelled},  // Withdrawn.
      {SessionState::kRunning, SessionState::kStopping},
      {SessionState::kRunning, SessionState::kCancelling},
      {SessionState::kRunning, SessionState::kFailed},
      {SessionState::kStopping, SessionState::kCompleted},
      {SessionState::kStopping, SessionState::kFailed},
      {SessionState::kCancelling, SessionState::kCancelled},
      {SessionState::kCancelling, SessionState::kFailed},
  };
  for (SessionState from : kAll) {
    for (SessionState to : kAll) {
      EXPECT_EQ(IsValidTransition(from, to), allowed.count({from, to}) == 1)
          << StateName(from) << " -> " << StateName(to);
    }
  }
}

TEST(SessionStateTest, FinalStatesAndProtoRoundTrip) {
  for (SessionState s : kAll) {
    EXPECT_EQ(FromProto(ToProto(s)), s) << StateName(s);
    const bool final_state = s == SessionState::kCompleted ||
                             s == SessionState::kCancelled ||
                             s == SessionState::kFailed;
    EXPECT_EQ(IsFinal(s), final_state) << StateName(s);
  }
  EXPECT_EQ(ToProto(SessionState::kRunning), v1::TRACE_STATE_RUNNING);
}

}  // namespace
}  // namespace labtrace::agent
