#include "agent/service/metrics.h"

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "labtrace/v1/agent.pb.h"

namespace labtrace::agent {

void Metrics::SessionEvent(const std::string& backend,
                           const std::string& event) {
  absl::MutexLock lock(&mu_);
  ++sessions_[{backend, event}];
}

void Metrics::Request(const std::string& transport, const std::string& route,
                      const std::string& code) {
  absl::MutexLock lock(&mu_);
  ++requests_[absl::StrCat("transport=\"", transport, "\",route=\"", route,
                           "\",code=\"", code, "\"")];
}

void Metrics::BytesServed(std::uint64_t n) {
  absl::MutexLock lock(&mu_);
  bytes_served_ += n;
}

std::string Metrics::Render(int active_sessions, int artifact_count,
                            std::uint64_t artifact_bytes) const {
  absl::MutexLock lock(&mu_);
  std::string out;
  absl::StrAppend(&out,
                  "# HELP labtrace_active_sessions Trace sessions active now.\n"
                  "# TYPE labtrace_active_sessions gauge\n"
                  "labtrace_active_sessions ",
                  active_sessions, "\n");
  absl::StrAppend(&out,
                  "# HELP labtrace_sessions_total Session events by backend "
                  "(started, completed, failed, cancelled).\n"
                  "# TYPE labtrace_sessions_total counter\n");
  for (const auto& [k, v] : sessions_) {
    absl::StrAppend(&out, "labtrace_sessions_total{backend=\"", k.first,
                    "\",event=\"", k.second, "\"} ", v, "\n");
  }
  absl::StrAppend(
      &out,
      "# HELP labtrace_artifacts Artifacts in the store.\n"
      "# TYPE labtrace_artifacts gauge\n"
      "labtrace_artifacts ",
      artifact_count,
      "\n# HELP labtrace_artifact_bytes Bytes of artifacts in the store.\n"
      "# TYPE labtrace_artifact_bytes gauge\n"
      "labtrace_artifact_bytes ",
      artifact_bytes,
      "\n# HELP labtrace_bytes_served_total Artifact bytes sent to clients.\n"
      "# TYPE labtrace_bytes_served_total counter\n"
      "labtrace_bytes_served_total ",
      bytes_served_, "\n");
  absl::StrAppend(&out,
                  "# HELP labtrace_requests_total Requests by transport, route "
                  "and status.\n"
                  "# TYPE labtrace_requests_total counter\n");
  for (const auto& [labels, v] : requests_) {
    absl::StrAppend(&out, "labtrace_requests_total{", labels, "} ", v, "\n");
  }
  return out;
}

namespace {

class MetricsInterceptor final : public grpc::experimental::Interceptor {
 public:
  MetricsInterceptor(grpc::experimental::ServerRpcInfo* info, Metrics* metrics)
      : metrics_(metrics) {
    // "/labtrace.v1.TraceAgent/StartTrace" -> "StartTrace".
    const std::string method = info->method() != nullptr ? info->method() : "";
    route_ = method.substr(method.rfind('/') + 1);
    fetch_ = route_ == "FetchArtifact";
  }

  void Intercept(
      grpc::experimental::InterceptorBatchMethods* methods) override {
    using grpc::experimental::InterceptionHookPoints;
    if (fetch_ && methods->QueryInterceptionHookPoint(
                      InterceptionHookPoints::PRE_SEND_MESSAGE)) {
      if (const void* m = methods->GetSendMessage(); m != nullptr) {
        metrics_->BytesServed(
            static_cast<const v1::ArtifactChunk*>(m)->data().size());
      }
    }
    if (methods->QueryInterceptionHookPoint(
            InterceptionHookPoints::PRE_SEND_STATUS)) {
      const grpc::Status s = methods->GetSendStatus();
      metrics_->Request("grpc", route_,
                        absl::StatusCodeToString(
                            static_cast<absl::StatusCode>(s.error_code())));
    }
    methods->Proceed();
  }

 private:
  Metrics* const metrics_;
  std::string route_;
  bool fetch_ = false;
};

class MetricsInterceptorFactory final
    : public grpc::experimental::ServerInterceptorFactoryInterface {
 public:
  explicit MetricsInterceptorFactory(Metrics* metrics) : metrics_(metrics) {}
  grpc::experimental::Interceptor* CreateServerInterceptor(
      grpc::experimental::ServerRpcInfo* info) override {
    return new MetricsInterceptor(info, metrics_);
  }

 private:
  Metrics* const metrics_;
};

}  // namespace

std::vector<
    std::unique_ptr<grpc::experimental::ServerInterceptorFactoryInterface>>
MetricsInterceptors(Metrics* metrics) {
  std::vector<
      std::unique_ptr<grpc::experimental::ServerInterceptorFactoryInterface>>
      v;
  v.push_back(std::make_unique<MetricsInterceptorFactory>(metrics));
  return v;
}

}  // namespace labtrace::agent
