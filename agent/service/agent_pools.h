// AgentPools: the agent's threads, one bounded pool per kind of call, shared
// by the gRPC service and the REST gateway. The point is the emergency: an
// agent saturated by 40 hour-long step commands and 40 slow downloads still
// answers StopAllTraces, StopTrace, CancelTrace and health at once, because
// those never wait for a thread that a command or a download holds.
//
//   emergency  StopAllTraces (and the fence)        few threads, own queue
//   control    StartTrace, StopTrace, CancelTrace, DeleteArtifact, KeepAlive
//   commands   RunCommand: one thread per running command, no queue
//   downloads  FetchArtifact chunk reads (the streams themselves wait on the
//              network without a thread); concurrent downloads are capped
//              separately (AgentLimits.max_downloads)
// Queries (info, list, get, metrics, health) are quick and run on the
// transport's own threads.
//
// A full pool answers UNAVAILABLE "agent busy" (BusyStatus): distinct from the
// session cap (RESOURCE_EXHAUSTED), and safe for clients to retry.

#ifndef LABTRACE_AGENT_SERVICE_AGENT_POOLS_H_
#define LABTRACE_AGENT_SERVICE_AGENT_POOLS_H_

#include <atomic>

#include "absl/status/status.h"
#include "agent/config/agent_config.h"
#include "common/work_pool.h"

namespace labtrace::agent {

struct AgentPools {
  explicit AgentPools(const PoolConfig& config)
      : emergency("emergency", config.emergency_threads, 16),
        control("control", config.control_threads, 4 * config.control_threads),
        commands("commands", config.max_commands, 0),
        downloads("downloads", config.download_threads,
                  4 * config.max_downloads),
        max_downloads(config.max_downloads) {}

  WorkPool emergency;
  WorkPool control;
  WorkPool commands;
  WorkPool downloads;
  // Downloads in progress over both transports, capped at max_downloads.
  std::atomic<int> active_downloads{0};
  const int max_downloads;
};

// UNAVAILABLE: "agent busy: all N <pool> threads are in use ...; retry".
// Every busy answer starts with kBusyPrefix, so clients can tell it from a
// connection failure (also UNAVAILABLE) and retry calls that are safe to.
inline constexpr char kBusyPrefix[] = "agent busy: ";
absl::Status BusyStatus(const WorkPool& pool, absl::string_view what);

}  // namespace labtrace::agent

#endif  // LABTRACE_AGENT_SERVICE_AGENT_POOLS_H_
