#include "agent/service/metrics.h"

#include "absl/status/status.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "labtrace/v1/agent.grpc.pb.h"
#include "labtrace/v1/agent.pb.h"

namespace labtrace::agent {

void Metrics::SessionEvent(const std::string& backend,
                           const std::string& event) {
  absl::MutexLock lock(&mu_);
  ++sessions_[{backend, event}];
}

namespace {

// A Prometheus label value: backslash, quote and newline escaped (the text
// format's rules), so no caller-chosen text can end a label or a line.
std::string LabelValue(absl::string_view v) {
  std::string out;
  for (char c : v) {
    if (c == '\\' || c == '"') {
      out += '\\';
      out += c;
    } else if (c == '\n') {
      out += "\\n";
    } else {
      out += c;
    }
  }
  return out;
}

}  // namespace

void Metrics::Request(const std::string& transport, const std::string& route,
                      const std::string& code) {
  const std::string key = absl::StrCat(
      "transport=\"", LabelValue(transport), "\",route=\"", LabelValue(route),
      "\",code=\"", LabelValue(code), "\"");
  absl::MutexLock lock(&mu_);
  ++requests_[key];
}

std::string MetricsRouteOfGrpcMethod(absl::string_view method) {
  // "/labtrace.v1.TraceAgent/StartTrace" -> "StartTrace"; the standard
  // services by their full name; anything else (a client may send any path)
  // is one bucket, so no client can grow the table or forge a series.
  static const absl::string_view kOurs = "/labtrace.v1.TraceAgent/";
  if (absl::StartsWith(method, kOurs)) {
    absl::string_view name = method.substr(kOurs.size());
    const google::protobuf::ServiceDescriptor* service =
        v1::StartTraceRequest::descriptor()->file()->FindServiceByName(
            "TraceAgent");
    if (service->FindMethodByName(std::string(name)) != nullptr) {
      return std::string(name);
    }
    return "unknown";
  }
  for (absl::string_view known :
       {"/grpc.health.v1.Health/Check", "/grpc.health.v1.Health/Watch",
        "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo",
        "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo"}) {
    if (method == known) return std::string(method.substr(1));
  }
  return "unknown";
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
    route_ = MetricsRouteOfGrpcMethod(
        info->method() != nullptr ? info->method() : "");
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
