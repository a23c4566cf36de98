// RestGateway: the REST/JSON mirror of labtrace.v1.TraceAgent, a second
// adapter over the same core (SessionManager, ArtifactStore, CommandRunner)
// as the gRPC service. Bodies are the protobuf JSON mapping of the same
// messages, so agent.proto stays the one schema. Served by cpp-httplib
// (Debian libcpp-httplib-dev), over TLS / mutual TLS when configured.
//
//   GET    /healthz                        liveness (no token needed)
//   GET    /metrics                        Prometheus text (read)
//   GET    /v1/info                        AgentInfo (read)
//   GET    /v1/traces[?include_finished=true]   ListTracesResponse (read)
//   POST   /v1/traces                      StartTraceRequest -> TraceSession (control)
//   GET    /v1/traces/{name}               TraceSession (read)
//   POST   /v1/traces/{name}/stop          StopTraceResponse (control)
//   POST   /v1/traces/{name}/cancel        TraceSession (control)
//   POST   /v1/stop-all[?discard=true]     StopAllTracesResponse (admin)
//   GET    /v1/artifacts[?run_id=R&name=N] ListArtifactsResponse (read)
//   GET    /v1/artifacts/{id}              Artifact (read)
//   DELETE /v1/artifacts/{id}              DeleteArtifactResponse (admin)
//   GET    /v1/artifacts/{id}/content      the bytes; Range, ETag = sha256 (read)
//   POST   /v1/commands                    RunCommandRequest -> RunCommandResponse (admin)
// Errors: {"code": "NOT_FOUND", "message": "...", "http_status": 404} with
// the HTTP status of the gRPC code (400, 401, 403, 404, 409, 416, 429, 500,
// 503, ...).
//
// Threading: httplib's own thread pool (bounded) runs the handlers; Start()
// binds, then a thread of ours runs the accept loop until Stop().

#ifndef LABTRACE_AGENT_SERVICE_REST_GATEWAY_H_
#define LABTRACE_AGENT_SERVICE_REST_GATEWAY_H_

#include <memory>
#include <string>
#include <thread>

#include "absl/status/statusor.h"
#include "agent/config/agent_config.h"
#include "agent/service/auth.h"
#include "agent/service/metrics.h"
#include "agent/session/command_runner.h"
#include "agent/session/session_manager.h"
#include "agent/store/artifact_store.h"

namespace httplib {
class Server;
}

namespace labtrace::agent {

struct RestGatewayDeps {
  SessionManager* manager;
  ArtifactStore* store;
  CommandRunner* runner;
  const Authorizer* authorizer;
  AuditLog* audit;
  Metrics* metrics;
  // GetAgentInfo's answer (shared with the gRPC service).
  std::function<v1::AgentInfo()> info;
};

// The HTTP status for a canonical status code.
int HttpStatusFor(absl::StatusCode code);

class RestGateway {
 public:
  // Binds `listen` ("host:port"; port 0 picks one) with TLS if configured.
  static absl::StatusOr<std::unique_ptr<RestGateway>> Start(
      const std::string& listen, const TlsConfig& tls, RestGatewayDeps deps);
  ~RestGateway();
  int port() const { return port_; }
  void Stop();

 private:
  RestGateway() = default;
  void Routes();

  RestGatewayDeps deps_;
  std::unique_ptr<httplib::Server> server_;
  std::thread thread_;
  int port_ = 0;
};

}  // namespace labtrace::agent

#endif  // LABTRACE_AGENT_SERVICE_REST_GATEWAY_H_
