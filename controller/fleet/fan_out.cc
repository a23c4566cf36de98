#include "controller/fleet/fan_out.h"

namespace labtrace::controller {

const char* HostOutcomeName(HostOutcome outcome) {
  switch (outcome) {
    case HostOutcome::kOk:
      return "ok";
    case HostOutcome::kFailed:
      return "failed";
    case HostOutcome::kUnreachable:
      return "unreachable";
    case HostOutcome::kTimedOut:
      return "timed_out";
  }
  return "unknown";
}

HostOutcome ClassifyStatus(const absl::Status& status) {
  switch (status.code()) {
    case absl::StatusCode::kOk:
      return HostOutcome::kOk;
    case absl::StatusCode::kUnavailable:
      return HostOutcome::kUnreachable;
    case absl::StatusCode::kDeadlineExceeded:
      return HostOutcome::kTimedOut;
    default:
      return HostOutcome::kFailed;
  }
}

AgentClient& ClientPool::For(const Host& host) {
  absl::MutexLock lock(&mu_);
  std::unique_ptr<AgentClient>& c = clients_[host.name];
  if (c == nullptr) c = factory_(host);
  return *c;
}

}  // namespace labtrace::controller
