// TraceAgentService: the gRPC adapter of labtrace.v1.TraceAgent. It only
// translates between gRPC and the SessionManager / ArtifactStore (which hold
// all the logic) and streams artifact bytes.
//
// Sync API: handlers block (backend processes, file reads) on gRPC's thread
// pool, bounded by the server's ResourceQuota (AgentServer).

#ifndef LABTRACE_AGENT_SERVICE_TRACE_AGENT_SERVICE_H_
#define LABTRACE_AGENT_SERVICE_TRACE_AGENT_SERVICE_H_

#include <cstdint>
#include <string>

#include "absl/time/time.h"
#include "agent/service/auth.h"
#include "agent/session/command_runner.h"
#include "agent/session/session_manager.h"
#include "agent/store/artifact_store.h"
#include "labtrace/v1/agent.grpc.pb.h"

namespace labtrace::agent {

struct TraceAgentServiceOptions {
  std::filesystem::path data_dir;  // For free-space reporting.
  std::uint32_t default_chunk_bytes = 1 << 20;
  v1::AgentLimits limits;
  absl::Time started_at;
};

class TraceAgentService final : public v1::TraceAgent::Service {
 public:
  TraceAgentService(TraceAgentServiceOptions options, SessionManager* manager,
                    ArtifactStore* store, CommandRunner* runner,
                    const Authorizer* authorizer, AuditLog* audit);

  // GetAgentInfo's answer, also served by the REST gateway.
  v1::AgentInfo AgentInfoNow() const;

  grpc::Status GetAgentInfo(grpc::ServerContext* ctx,
                            const v1::GetAgentInfoRequest* req,
                            v1::AgentInfo* resp) override;
  grpc::Status StartTrace(grpc::ServerContext* ctx,
                          const v1::StartTraceRequest* req,
                          v1::TraceSession* resp) override;
  grpc::Status StopTrace(grpc::ServerContext* ctx,
                         const v1::StopTraceRequest* req,
                         v1::StopTraceResponse* resp) override;
  grpc::Status CancelTrace(grpc::ServerContext* ctx,
                           const v1::CancelTraceRequest* req,
                           v1::TraceSession* resp) override;
  grpc::Status GetTrace(grpc::ServerContext* ctx,
                        const v1::GetTraceRequest* req,
                        v1::TraceSession* resp) override;
  grpc::Status ListTraces(grpc::ServerContext* ctx,
                          const v1::ListTracesRequest* req,
                          v1::ListTracesResponse* resp) override;
  grpc::Status StopAllTraces(grpc::ServerContext* ctx,
                             const v1::StopAllTracesRequest* req,
                             v1::StopAllTracesResponse* resp) override;
  grpc::Status ListArtifacts(grpc::ServerContext* ctx,
                             const v1::ListArtifactsRequest* req,
                             v1::ListArtifactsResponse* resp) override;
  grpc::Status GetArtifact(grpc::ServerContext* ctx,
                           const v1::GetArtifactRequest* req,
                           v1::Artifact* resp) override;
  grpc::Status FetchArtifact(
      grpc::ServerContext* ctx, const v1::FetchArtifactRequest* req,
      grpc::ServerWriter<v1::ArtifactChunk>* writer) override;
  grpc::Status DeleteArtifact(grpc::ServerContext* ctx,
                              const v1::DeleteArtifactRequest* req,
                              v1::DeleteArtifactResponse* resp) override;
  grpc::Status RunCommand(grpc::ServerContext* ctx,
                          const v1::RunCommandRequest* req,
                          v1::RunCommandResponse* resp) override;

 private:
  const TraceAgentServiceOptions options_;
  SessionManager* const manager_;
  ArtifactStore* const store_;
  CommandRunner* const runner_;
  const Authorizer* const authorizer_;
  AuditLog* const audit_;

  // OK and *caller filled if the call may proceed; else the gRPC status
  // (UNAUTHENTICATED / PERMISSION_DENIED) to return.
  grpc::Status Allow(grpc::ServerContext* ctx, absl::string_view operation,
                     Role needed, Caller* caller) const;
  // Records a mutating call in the audit log, then returns its result.
  template <typename T>
  grpc::Status Audited(grpc::ServerContext* ctx, const Caller& caller,
                       absl::string_view operation, absl::string_view target,
                       absl::StatusOr<T> result, T* out);
};

}  // namespace labtrace::agent

#endif  // LABTRACE_AGENT_SERVICE_TRACE_AGENT_SERVICE_H_
