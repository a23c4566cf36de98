// Start validation: everything StartTrace checks about a request before any
// state changes (names, labels, mode, profile and backend, max duration,
// lease, byte limit). Pure: it looks only at the request, the catalog, the
// backends and the limits, so every refusal is precise and leaves the agent
// untouched. (The fence, the session cap, duplicate names and the disk floor
// depend on live state; SessionManager checks those.)

#ifndef LABTRACE_AGENT_SESSION_START_CHECKS_H_
#define LABTRACE_AGENT_SESSION_START_CHECKS_H_

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "agent/backend/trace_backend.h"
#include "agent/config/agent_config.h"
#include "labtrace/v1/agent.pb.h"

namespace labtrace::agent {

struct StartLimits {
  absl::Duration max_duration;
  absl::Duration max_lease;
  std::uint64_t max_session_bytes = 0;  // 0: none
  absl::Time now;  // For start_at.
};

// How far ahead a synchronised start may be scheduled.
inline constexpr absl::Duration kMaxStartAhead = absl::Seconds(60);

// What a valid request resolves to.
struct StartPlan {
  const ProfileSpec* profile = nullptr;
  TraceBackend* backend = nullptr;
  v1::TraceMode mode = v1::TRACE_MODE_FILE;
  absl::Duration max_duration;
  absl::Duration lease = absl::ZeroDuration();  // Zero: no lease.
  std::string lease_holder;
  std::uint64_t max_bytes = 0;
  // A synchronised start: start the tool at this instant (InfinitePast: at
  // once).
  absl::Time start_at = absl::InfinitePast();
};

absl::StatusOr<StartPlan> CheckStart(
    const v1::StartTraceRequest& request,
    const std::vector<ProfileSpec>& catalog,
    const std::map<std::string, std::unique_ptr<TraceBackend>>& backends,
    const StartLimits& limits);

}  // namespace labtrace::agent

#endif  // LABTRACE_AGENT_SESSION_START_CHECKS_H_
