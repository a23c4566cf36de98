// Synchronised starts across hosts: each agent's clock offset against the
// controller, estimated NTP-style from GetAgentInfo round trips (the sample
// with the lowest round trip wins; AgentInfo.now is taken to be read at its
// middle), and one start instant converted into every agent's clock
// (StartTraceRequest.start_at).
//
//   ClockEstimates clocks = EstimateClocks(hosts, clients, fan_out);
//   absl::Time at = PickStartInstant(clocks, now);
//   req.start_at = AgentTime(at, clocks.at(host.name));
//   ... then, from each started session:
//   StartSpread(started_sessions, clocks)  // max - min, controller's clock

#ifndef LABTRACE_CONTROLLER_FLEET_CLOCK_SYNC_H_
#define LABTRACE_CONTROLLER_FLEET_CLOCK_SYNC_H_

#include <map>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "controller/fleet/fan_out.h"
#include "labtrace/v1/agent.pb.h"

namespace labtrace::controller {

struct ClockEstimate {
  absl::Duration offset;  // Agent clock minus controller clock.
  absl::Duration rtt;     // Of the sample the offset comes from.
};

// From one round trip: sent at `t0`, answered at `t1` (controller clock),
// the agent's clock reading `agent_now`.
ClockEstimate EstimateFromSample(absl::Time t0, absl::Time t1,
                                 absl::Time agent_now);

// `samples` GetAgentInfo round trips per host, in parallel over hosts; the
// lowest-RTT sample of each. An agent without AgentInfo.now (older than
// synchronised starts) fails with FAILED_PRECONDITION.
std::vector<HostResult<ClockEstimate>> EstimateClocks(
    const std::vector<Host>& hosts, ClientPool& clients,
    const FanOutOptions& options, int samples = 4);

// The instant to start at (controller clock): far enough ahead that every
// request arrives first (a margin over the slowest round trip and the
// fan-out of `hosts` requests), at least `min_lead`.
absl::Time PickStartInstant(const std::vector<ClockEstimate>& clocks,
                            std::size_t hosts, int parallel, absl::Time now,
                            absl::Duration min_lead = absl::Milliseconds(500));

// A synchronised start of `req` on `hosts`: clocks estimated, one instant
// picked, every agent prepares and answers STARTING, starts at the instant;
// then each started host's session is read back (RUNNING, the actual start
// time). Hosts whose clock cannot be read are not started.
struct SyncStartResult {
  std::vector<HostResult<v1::TraceSession>> results;  // In `hosts` order.
  std::map<std::string, ClockEstimate> clocks;        // By host name.
  absl::Time instant;          // Controller clock.
  int started = 0;             // Hosts RUNNING after the instant.
  absl::Duration spread;       // Latest minus earliest actual start.
  absl::Duration latest_late;  // Latest actual start minus the instant.
};
// `known`: clocks estimated before (a run's); hosts missing from it fail
// with "clock unknown". Null: estimated now.
SyncStartResult SyncStart(
    const std::vector<Host>& hosts, ClientPool& clients,
    const FanOutOptions& options, const v1::StartTraceRequest& req,
    const std::map<std::string, ClockEstimate>* known = nullptr);

// A controller instant in an agent's clock, and back.
absl::Time AgentTime(absl::Time controller_time, const ClockEstimate& c);
absl::Time ControllerTime(absl::Time agent_time, const ClockEstimate& c);

}  // namespace labtrace::controller

#endif  // LABTRACE_CONTROLLER_FLEET_CLOCK_SYNC_H_
