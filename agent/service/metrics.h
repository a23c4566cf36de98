// Metrics: the agent's counters, rendered in the Prometheus text format by
// GET /metrics. Thread-safe; both adapters and the session manager count.

#ifndef LABTRACE_AGENT_SERVICE_METRICS_H_
#define LABTRACE_AGENT_SERVICE_METRICS_H_

#include <cstdint>
#include <map>
#include <string>
#include <utility>

#include "absl/base/thread_annotations.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"

namespace labtrace::agent {

// The route label of a gRPC method path: our method names, the standard
// services' full names, "unknown" for anything else.
std::string MetricsRouteOfGrpcMethod(absl::string_view method);

class Metrics {
 public:
  // A session of `backend` reached a state ("started", "completed",
  // "failed", "cancelled").
  void SessionEvent(const std::string& backend, const std::string& event);
  // A request finished: transport ("grpc", "rest"), route, status code name.
  void Request(const std::string& transport, const std::string& route,
               const std::string& code);
  void BytesServed(std::uint64_t n);

  // Gauges come from the caller at render time.
  std::string Render(int active_sessions, int artifact_count,
                     std::uint64_t artifact_bytes) const;

 private:
  mutable absl::Mutex mu_;
  std::map<std::pair<std::string, std::string>, std::uint64_t> sessions_
      ABSL_GUARDED_BY(mu_);
  std::map<std::string, std::uint64_t> requests_ ABSL_GUARDED_BY(mu_);
  std::uint64_t bytes_served_ ABSL_GUARDED_BY(mu_) = 0;
};

}  // namespace labtrace::agent

#endif  // LABTRACE_AGENT_SERVICE_METRICS_H_

#include <memory>
#include <vector>

#include "grpcpp/support/server_interceptor.h"

namespace labtrace::agent {

// Counts every gRPC call by method and status, and the artifact bytes
// FetchArtifact sends, into `metrics` (installed by AgentServer).
std::vector<
    std::unique_ptr<grpc::experimental::ServerInterceptorFactoryInterface>>
MetricsInterceptors(Metrics* metrics);

}  // namespace labtrace::agent
