// Conversion of absl::Status to grpc::Status at the gRPC edge.

#ifndef LABTRACE_AGENT_SERVICE_STATUS_CONVERT_H_
#define LABTRACE_AGENT_SERVICE_STATUS_CONVERT_H_

#include "absl/status/status.h"
#include "grpcpp/support/status.h"

namespace labtrace::agent {

// Same code (the canonical codes match one to one), same message.
inline grpc::Status ToGrpcStatus(const absl::Status& s) {
  return grpc::Status(static_cast<grpc::StatusCode>(s.code()),
                      std::string(s.message()));
}

}  // namespace labtrace::agent

#endif  // LABTRACE_AGENT_SERVICE_STATUS_CONVERT_H_
