// TraceAgentService: the gRPC adapter of labtrace.v1.TraceAgent. It only
// translates between gRPC and the SessionManager / ArtifactStore /
// CommandRunner (which hold all the logic) and streams artifact bytes.
//
// Callback API, so that no call holds a gRPC thread while it waits: each
// method checks the caller on gRPC's thread, then runs its work on the pool
// for its kind (agent_pools.h) and finishes the call from there. Queries run
// inline (they only read in-memory state). A full pool answers UNAVAILABLE
// "agent busy" at once. The emergency calls (StopAllTraces) have a pool of
// their own, so they get through however busy the agent is.
//
// RunCommandStreamed is a write reactor fed by the commands-pool thread that
// runs the program: the log file is the buffer, read ahead only while fewer
// than 1 MiB wait to be written, so a slow client costs no memory and never
// holds the program up.
//
// FetchArtifact is a write reactor: a pool thread reads the next chunk only
// after the previous write completed, so a slow client costs no thread, and
// a watchdog cancels a stream whose client has read nothing for
// download_stall_timeout. Concurrent streams are capped (max_downloads).
//
// Every refused call (auth), every mutating call and every download is
// audit-logged.

#ifndef LABTRACE_AGENT_SERVICE_TRACE_AGENT_SERVICE_H_
#define LABTRACE_AGENT_SERVICE_TRACE_AGENT_SERVICE_H_

#include <atomic>
#include <cstdint>
#include <set>
#include <string>
#include <thread>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "agent/service/agent_pools.h"
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
  absl::Duration download_stall_timeout = absl::Seconds(60);
  // zstd level of compressed downloads (FetchArtifactRequest.compression).
  int zstd_level = 1;
};

class TraceAgentService final : public v1::TraceAgent::CallbackService {
 public:
  TraceAgentService(TraceAgentServiceOptions options, SessionManager* manager,
                    ArtifactStore* store, CommandRunner* runner,
                    const Authorizer* authorizer, AuditLog* audit,
                    AgentPools* pools);
  // Stops the stall watchdog. The server must be shut down first.
  ~TraceAgentService() override;

  // GetAgentInfo's answer, also served by the REST gateway.
  v1::AgentInfo AgentInfoNow() const;

  grpc::ServerUnaryReactor* GetAgentInfo(grpc::CallbackServerContext* ctx,
                                         const v1::GetAgentInfoRequest* req,
                                         v1::AgentInfo* resp) override;
  grpc::ServerUnaryReactor* StartTrace(grpc::CallbackServerContext* ctx,
                                       const v1::StartTraceRequest* req,
                                       v1::TraceSession* resp) override;
  grpc::ServerUnaryReactor* StopTrace(grpc::CallbackServerContext* ctx,
                                      const v1::StopTraceRequest* req,
                                      v1::StopTraceResponse* resp) override;
  grpc::ServerUnaryReactor* CancelTrace(grpc::CallbackServerContext* ctx,
                                        const v1::CancelTraceRequest* req,
                                        v1::TraceSession* resp) override;
  grpc::ServerUnaryReactor* GetTrace(grpc::CallbackServerContext* ctx,
                                     const v1::GetTraceRequest* req,
                                     v1::TraceSession* resp) override;
  grpc::ServerUnaryReactor* ListTraces(grpc::CallbackServerContext* ctx,
                                       const v1::ListTracesRequest* req,
                                       v1::ListTracesResponse* resp) override;
  grpc::ServerUnaryReactor* StopAllTraces(
      grpc::CallbackServerContext* ctx, const v1::StopAllTracesRequest* req,
      v1::StopAllTracesResponse* resp) override;
  grpc::ServerUnaryReactor* ListArtifacts(
      grpc::CallbackServerContext* ctx, const v1::ListArtifactsRequest* req,
      v1::ListArtifactsResponse* resp) override;
  grpc::ServerUnaryReactor* GetArtifact(grpc::CallbackServerContext* ctx,
                                        const v1::GetArtifactRequest* req,
                                        v1::Artifact* resp) override;
  grpc::ServerWriteReactor<v1::ArtifactChunk>* FetchArtifact(
      grpc::CallbackServerContext* ctx,
      const v1::FetchArtifactRequest* req) override;
  grpc::ServerUnaryReactor* DeleteArtifact(
      grpc::CallbackServerContext* ctx, const v1::DeleteArtifactRequest* req,
      v1::DeleteArtifactResponse* resp) override;
  grpc::ServerUnaryReactor* UploadArtifact(
      grpc::CallbackServerContext* ctx, const v1::UploadArtifactRequest* req,
      v1::UploadArtifactResponse* resp) override;
  grpc::ServerUnaryReactor* RunCommand(grpc::CallbackServerContext* ctx,
                                       const v1::RunCommandRequest* req,
                                       v1::RunCommandResponse* resp) override;
  grpc::ServerWriteReactor<v1::RunCommandEvent>* RunCommandStreamed(
      grpc::CallbackServerContext* ctx,
      const v1::RunCommandRequest* req) override;
  grpc::ServerUnaryReactor* KeepAlive(grpc::CallbackServerContext* ctx,
                                      const v1::KeepAliveRequest* req,
                                      v1::KeepAliveResponse* resp) override;
  grpc::ServerUnaryReactor* Fence(grpc::CallbackServerContext* ctx,
                                  const v1::FenceRequest* req,
                                  v1::FenceResponse* resp) override;
  grpc::ServerUnaryReactor* Unfence(grpc::CallbackServerContext* ctx,
                                    const v1::UnfenceRequest* req,
                                    v1::FenceState* resp) override;

 private:
  class FetchReactor;
  class CommandStream;

  // RunCommandStreamed: sends what `file` holds past *offset. Unpaced
  // (while the program runs): only while the stream's queue has room.
  // Paced (the finished log): waits for the client, giving up the rest if
  // it reads nothing for download_stall_timeout.
  void ForwardOutput(CommandStream* stream, const std::filesystem::path& file,
                     std::uint64_t* offset, bool paced);

  // OK and *caller filled if the call may proceed; else the gRPC status
  // (UNAUTHENTICATED / PERMISSION_DENIED) to return, the refusal audited.
  grpc::Status Allow(grpc::CallbackServerContext* ctx,
                     absl::string_view operation, Role needed, Caller* caller);
  // Runs `work` on `pool` and finishes the call with its status; answers
  // "agent busy" at once if the pool is full. `pool` null: inline.
  grpc::ServerUnaryReactor* Run(grpc::CallbackServerContext* ctx,
                                WorkPool* pool, absl::string_view what,
                                std::function<grpc::Status()> work);

  void WatchStalls();

  const TraceAgentServiceOptions options_;
  SessionManager* const manager_;
  ArtifactStore* const store_;
  CommandRunner* const runner_;
  const Authorizer* const authorizer_;
  AuditLog* const audit_;
  AgentPools* const pools_;

  absl::Mutex streams_mu_;
  std::set<FetchReactor*> streams_ ABSL_GUARDED_BY(streams_mu_);
  bool stopping_ ABSL_GUARDED_BY(streams_mu_) = false;
  std::thread watchdog_;
};

}  // namespace labtrace::agent

#endif  // LABTRACE_AGENT_SERVICE_TRACE_AGENT_SERVICE_H_
