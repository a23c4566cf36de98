// RestGateway: the REST/JSON mirror of labtrace.v1.TraceAgent, a second
// adapter over the same core (SessionManager, ArtifactStore, CommandRunner)
// and the same pools as the gRPC service. Bodies are the protobuf JSON
// mapping of the same messages (unknown fields and duplicate keys refused),
// so agent.proto stays the one schema. Served by HttpServer (Boost.Beast),
// over TLS / mutual TLS when configured.
//
//   GET    /healthz                        liveness (no token needed)
//   GET    /metrics                        Prometheus text (read)
//   GET    /v1/info                        AgentInfo (read)
//   GET    /v1/traces[?include_finished=true]   ListTracesResponse (read)
//   POST   /v1/traces                      StartTraceRequest -> TraceSession (control)
//   GET    /v1/traces/{name}               TraceSession (read)
//   POST   /v1/traces/{name}/stop          StopTraceResponse (control)
//   POST   /v1/traces/{name}/cancel        TraceSession (control)
//   POST   /v1/keepalive                   KeepAliveRequest -> KeepAliveResponse (control)
//   POST   /v1/stop-all[?discard=true]     StopAllTracesResponse (admin)
//   POST   /v1/fence                       FenceRequest -> FenceResponse (admin)
//   POST   /v1/unfence                     FenceState (admin)
//   GET    /v1/artifacts[?run_id=R&name=N&page_size=K&page_token=T]
//                                          ListArtifactsResponse (read)
//   GET    /v1/artifacts/{id}              Artifact (read)
//   DELETE /v1/artifacts/{id}              DeleteArtifactResponse (admin)
//   GET    /v1/artifacts/{id}/content      the bytes (read): one Range
//                                          (206; past the end: 416), ETag =
//                                          sha256, If-None-Match (304);
//                                          Accept-Encoding: zstd (no Range):
//                                          Content-Encoding: zstd, chunked
//   POST   /v1/commands                    RunCommandRequest -> RunCommandResponse (admin)
// Every error, the server's own included (400, 404, 405, 408, 413, 416,
// 431, 503), is {"code": "...", "message": "...", "http_status": N}. A busy
// pool answers 503 with Retry-After: 1 and a message starting "agent busy".

#ifndef LABTRACE_AGENT_SERVICE_REST_GATEWAY_H_
#define LABTRACE_AGENT_SERVICE_REST_GATEWAY_H_

#include <functional>
#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "agent/config/agent_config.h"
#include "agent/service/agent_pools.h"
#include "agent/service/auth.h"
#include "agent/service/http_server.h"
#include "agent/service/metrics.h"
#include "agent/session/command_runner.h"
#include "agent/session/session_manager.h"
#include "agent/store/artifact_store.h"

namespace labtrace::agent {

struct RestGatewayDeps {
  SessionManager* manager;
  ArtifactStore* store;
  CommandRunner* runner;
  const Authorizer* authorizer;
  AuditLog* audit;
  Metrics* metrics;
  AgentPools* pools;
  // GetAgentInfo's answer (shared with the gRPC service).
  std::function<v1::AgentInfo()> info;
  // zstd level of bodies sent with Content-Encoding: zstd.
  int zstd_level = 1;
};

// True if an Accept-Encoding header value accepts zstd ("zstd", "gzip,
// zstd;q=0.5"; not "zstd;q=0").
bool AcceptsZstd(absl::string_view accept_encoding);

// The HTTP status for a canonical status code.
int HttpStatusFor(absl::StatusCode code);

// The JSON error body: {"code": "NOT_FOUND", "message": "...",
// "http_status": 404}.
std::string JsonErrorBody(absl::StatusCode code, int http_status,
                          absl::string_view message);

class RestGateway {
 public:
  // Binds `listen` ("host:port"; port 0 picks one) with TLS if configured.
  static absl::StatusOr<std::unique_ptr<RestGateway>> Start(
      const std::string& listen, const TlsConfig& tls, HttpLimits limits,
      RestGatewayDeps deps);
  ~RestGateway();
  int port() const { return server_->port(); }
  void Stop();

 private:
  RestGateway() = default;
  void Handle(HttpRequest req, HttpRespond respond);

  RestGatewayDeps deps_;
  std::unique_ptr<HttpServer> server_;
};

}  // namespace labtrace::agent

#endif  // LABTRACE_AGENT_SERVICE_REST_GATEWAY_H_
