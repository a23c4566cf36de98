// AgentServer: builds a whole agent from an AgentConfig (store, backends,
// session manager, gRPC service with health and reflection) and runs it.
// main.cc is flag parsing plus AgentServer; tests can run one in-process.
//
//   absl::StatusOr<std::unique_ptr<AgentServer>> server =
//       AgentServer::Start(config);
//   (*server)->port();   // the bound port (config may ask for port 0)
//   (*server)->Shutdown();

#ifndef LABTRACE_AGENT_SERVICE_AGENT_SERVER_H_
#define LABTRACE_AGENT_SERVICE_AGENT_SERVER_H_

#include <memory>

#include "absl/status/statusor.h"
#include "agent/config/agent_config.h"
#include "agent/service/agent_pools.h"
#include "agent/service/metrics.h"
#include "agent/service/rest_gateway.h"
#include "agent/service/trace_agent_service.h"
#include "agent/session/session_manager.h"
#include "agent/store/artifact_store.h"
#include "grpcpp/server.h"

namespace labtrace::agent {

class AgentServer {
 public:
  // Prepares the data dir, recovers the journal, and starts listening.
  static absl::StatusOr<std::unique_ptr<AgentServer>> Start(
      const AgentConfig& config);
  ~AgentServer();

  int port() const { return port_; }
  // The REST mirror's port, 0 when it is off.
  int rest_port() const { return rest_ == nullptr ? 0 : rest_->port(); }
  SessionManager& manager() { return *manager_; }

  // Blocks until Shutdown() is called from another thread.
  void Wait();
  // Graceful: stops accepting calls, lets running ones finish (up to
  // `grace`), then stops every still-active session, keeping its file.
  void Shutdown(absl::Duration grace = absl::Seconds(10));

 private:
  AgentServer() = default;

  std::unique_ptr<ArtifactStore> store_;
  std::unique_ptr<SessionManager> manager_;
  std::unique_ptr<CommandRunner> runner_;
  // Drained (queued work run, threads joined) by Shutdown, while the
  // service and gateway their work refers to still exist.
  std::unique_ptr<AgentPools> pools_;
  std::unique_ptr<Authorizer> authorizer_;
  std::unique_ptr<AuditLog> audit_;
  std::unique_ptr<TraceAgentService> service_;
  std::unique_ptr<Metrics> metrics_;
  std::unique_ptr<RestGateway> rest_;
  std::unique_ptr<grpc::Server> server_;
  int port_ = 0;
  bool shut_down_ = false;
};

}  // namespace labtrace::agent

#endif  // LABTRACE_AGENT_SERVICE_AGENT_SERVER_H_
