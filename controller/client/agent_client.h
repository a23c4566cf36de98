// AgentClient: one agent, as the controller sees it. GrpcAgentClient talks
// to a real agent; tests use fakes. Every call takes a deadline; errors are
// absl::Status with gRPC's code (UNAVAILABLE: unreachable, DEADLINE_EXCEEDED:
// timed out, anything else: the agent said no) and its message.
//
// An agent that answers "agent busy" (its pool for that kind of call is
// full; nothing was done) is asked again, with backoff, until the deadline;
// if it stays busy the call ends RESOURCE_EXHAUSTED ("stayed busy"), never
// as "unreachable". Calls that are safe to repeat (stop-all, stop, cancel,
// keep-alive, the queries) are also retried after a connection failure,
// within the deadline.
//
// Thread-safe: FanOut calls one client from one worker at a time, but the
// interrupt path (CallCanceller) may cancel from another thread.

#ifndef LABTRACE_CONTROLLER_CLIENT_AGENT_CLIENT_H_
#define LABTRACE_CONTROLLER_CLIENT_AGENT_CLIENT_H_

#include <functional>
#include <memory>
#include <set>
#include <string>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "controller/inventory/inventory.h"
#include "labtrace/v1/agent.pb.h"

namespace grpc {
class ClientContext;
}

namespace labtrace::controller {

class AgentClient {
 public:
  virtual ~AgentClient() = default;

  virtual absl::StatusOr<v1::AgentInfo> GetAgentInfo(absl::Time deadline) = 0;
  virtual absl::StatusOr<v1::TraceSession> StartTrace(
      const v1::StartTraceRequest& req, absl::Time deadline) = 0;
  virtual absl::StatusOr<v1::StopTraceResponse> StopTrace(
      const std::string& name, absl::Time deadline) = 0;
  virtual absl::StatusOr<v1::TraceSession> CancelTrace(const std::string& name,
                                                       absl::Time deadline) = 0;
  virtual absl::StatusOr<v1::ListTracesResponse> ListTraces(
      bool include_finished, absl::Time deadline) = 0;
  virtual absl::StatusOr<v1::StopAllTracesResponse> StopAllTraces(
      bool discard, absl::Time deadline) = 0;
  virtual absl::StatusOr<v1::ListArtifactsResponse> ListArtifacts(
      const v1::ListArtifactsRequest& req, absl::Time deadline) = 0;
  virtual absl::StatusOr<v1::DeleteArtifactResponse> DeleteArtifact(
      const std::string& id, absl::Time deadline) = 0;
  virtual absl::StatusOr<v1::RunCommandResponse> RunCommand(
      const v1::RunCommandRequest& req, absl::Time deadline) = 0;
  // RunCommand with the output as it comes: `output` gets every piece in
  // order (stdout and stderr merged) while the program runs. Agents without
  // RunCommandStreamed (and fakes) get RunCommand, and `output` its tail.
  virtual absl::StatusOr<v1::RunCommandResponse> RunCommandStreamed(
      const v1::RunCommandRequest& req, absl::Time deadline,
      const std::function<void(const std::string&)>& output) {
    absl::StatusOr<v1::RunCommandResponse> r = RunCommand(req, deadline);
    if (r.ok() && !r->output_tail().empty()) output(r->output_tail());
    return r;
  }
  virtual absl::StatusOr<v1::UploadArtifactResponse> UploadArtifact(
      const v1::UploadArtifactRequest& req, absl::Time deadline) {
    return absl::UnimplementedError("UploadArtifact");
  }
  virtual absl::StatusOr<v1::KeepAliveResponse> KeepAlive(
      const v1::KeepAliveRequest& req, absl::Time deadline) {
    return absl::UnimplementedError("KeepAlive");
  }
  virtual absl::StatusOr<v1::FenceResponse> Fence(const std::string& reason,
                                                  absl::Time deadline) {
    return absl::UnimplementedError("Fence");
  }
  virtual absl::StatusOr<v1::FenceState> Unfence(absl::Time deadline) {
    return absl::UnimplementedError("Unfence");
  }
  // Streams an artifact from `offset`; `sink` gets every chunk in order and
  // may stop the stream by returning an error (which is then returned).
  virtual absl::Status FetchArtifact(
      const std::string& id, std::uint64_t offset,
      const std::function<absl::Status(const v1::ArtifactChunk&)>& sink,
      absl::Time deadline) = 0;
};

// Cancels every registered in-flight call at once (Ctrl-C during a lab run:
// agents then kill their step commands and stop the traces).
class CallCanceller {
 public:
  void Register(grpc::ClientContext* ctx);
  void Unregister(grpc::ClientContext* ctx);
  void CancelAll();
  // Lets new calls through again (cleanup after an interrupt).
  void Reset();
  bool cancelled() const;

 private:
  mutable absl::Mutex mu_;
  std::set<grpc::ClientContext*> live_ ABSL_GUARDED_BY(mu_);
  bool cancelled_ ABSL_GUARDED_BY(mu_) = false;
};

struct GrpcClientOptions {
  absl::Duration connect_timeout = absl::Seconds(3);
  CallCanceller* canceller = nullptr;  // Optional.
  // Downloads ask for zstd chunks (decoded here: the sink of
  // FetchArtifact always sees the original bytes).
  bool compress_downloads = true;
};

std::unique_ptr<AgentClient> MakeGrpcAgentClient(
    const Host& host, const GrpcClientOptions& options);

// Creates clients: real ones in main, fakes in tests.
using ClientFactory = std::function<std::unique_ptr<AgentClient>(const Host&)>;

}  // namespace labtrace::controller

#endif  // LABTRACE_CONTROLLER_CLIENT_AGENT_CLIENT_H_
