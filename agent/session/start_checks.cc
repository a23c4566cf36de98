#include "agent/session/start_checks.h"

#include "absl/strings/str_cat.h"
#include "common/names.h"
#include "common/proto_time.h"
#include "common/status_macros.h"
#include "common/time_util.h"

namespace labtrace::agent {
namespace {

const char* ModeName(v1::TraceMode mode) {
  return mode == v1::TRACE_MODE_MEMORY ? "memory" : "file";
}

}  // namespace

absl::StatusOr<StartPlan> CheckStart(
    const v1::StartTraceRequest& req, const std::vector<ProfileSpec>& catalog,
    const std::map<std::string, std::unique_ptr<TraceBackend>>& backends,
    const StartLimits& limits) {
  LABTRACE_RETURN_IF_ERROR(ValidateName("trace name", req.name()));
  LABTRACE_RETURN_IF_ERROR(ValidateOptionalName("run_id", req.run_id()));
  LABTRACE_RETURN_IF_ERROR(ValidateOptionalName("phase", req.phase()));
  LABTRACE_RETURN_IF_ERROR(
      ValidateOptionalName("lease_holder", req.lease_holder()));
  if (req.labels_size() > 32) {
    return absl::InvalidArgumentError(absl::StrCat(
        req.labels_size(), " labels given; at most 32 are allowed"));
  }
  for (const auto& [k, v] : req.labels()) {
    LABTRACE_RETURN_IF_ERROR(ValidateName("label key", k));
    LABTRACE_RETURN_IF_ERROR(ValidateLabelValue(k, v));
  }
  if (req.mode() != v1::TRACE_MODE_UNSPECIFIED &&
      req.mode() != v1::TRACE_MODE_FILE &&
      req.mode() != v1::TRACE_MODE_MEMORY) {
    return absl::InvalidArgumentError(
        absl::StrCat("unknown trace mode ", static_cast<int>(req.mode())));
  }
  if (req.profile().empty()) {
    return absl::InvalidArgumentError(
        "profile is empty; GetAgentInfo lists this agent's profiles");
  }
  StartPlan plan;
  std::string known;
  for (const ProfileSpec& p : catalog) {
    if (p.name == req.profile()) plan.profile = &p;
    absl::StrAppend(&known, known.empty() ? "" : ", ", p.name);
  }
  if (plan.profile == nullptr) {
    return absl::NotFoundError(absl::StrCat("unknown profile ",
                                            QuoteForMessage(req.profile()),
                                            "; this agent has: ", known));
  }
  plan.mode = req.mode() == v1::TRACE_MODE_MEMORY ? v1::TRACE_MODE_MEMORY
                                                  : v1::TRACE_MODE_FILE;
  if ((plan.mode == v1::TRACE_MODE_FILE && !plan.profile->file_mode) ||
      (plan.mode == v1::TRACE_MODE_MEMORY && !plan.profile->memory_mode)) {
    return absl::InvalidArgumentError(
        absl::StrCat("profile \"", plan.profile->name, "\" does not support ",
                     ModeName(plan.mode), " mode"));
  }
  auto b = backends.find(plan.profile->backend);
  if (b == backends.end()) {
    return absl::FailedPreconditionError(absl::StrCat(
        "profile \"", plan.profile->name, "\" needs the ",
        plan.profile->backend, " backend, which this agent build does not have"));
  }
  if (absl::Status s = b->second->CheckAvailable(nullptr); !s.ok()) {
    return absl::FailedPreconditionError(absl::StrCat(
        "profile \"", plan.profile->name, "\": backend ", plan.profile->backend,
        " is not available here: ", s.message()));
  }
  plan.backend = b->second.get();
  plan.max_duration = limits.max_duration;
  if (req.has_max_duration()) {
    absl::Duration d = FromProtoDuration(req.max_duration());
    if (d < absl::ZeroDuration()) {
      return absl::InvalidArgumentError("max_duration is negative");
    }
    if (d > limits.max_duration) {
      return absl::InvalidArgumentError(absl::StrCat(
          "max_duration ", HumanDuration(d), " exceeds this agent's limit of ",
          HumanDuration(limits.max_duration)));
    }
    if (d > absl::ZeroDuration()) plan.max_duration = d;
  }
  if (req.has_lease()) {
    absl::Duration d = FromProtoDuration(req.lease());
    if (d < absl::ZeroDuration()) {
      return absl::InvalidArgumentError("lease is negative");
    }
    if (d > limits.max_lease) {
      return absl::InvalidArgumentError(absl::StrCat(
          "lease ", HumanDuration(d), " exceeds this agent's limit of ",
          HumanDuration(limits.max_lease)));
    }
    if (d > absl::ZeroDuration() && d < absl::Seconds(1)) {
      return absl::InvalidArgumentError("lease must be at least 1s");
    }
    plan.lease = d;
  }
  plan.lease_holder = req.lease_holder().empty() ? req.run_id() : req.lease_holder();
  if (plan.lease > absl::ZeroDuration() && plan.lease_holder.empty()) {
    return absl::InvalidArgumentError(
        "a lease needs a lease_holder or a run_id: KeepAlive names one of "
        "them to renew it");
  }
  plan.max_bytes = limits.max_session_bytes;
  if (req.max_bytes() > 0) {
    if (limits.max_session_bytes > 0 && req.max_bytes() > limits.max_session_bytes) {
      return absl::InvalidArgumentError(absl::StrCat(
          "max_bytes ", req.max_bytes(), " exceeds this agent's limit of ",
          limits.max_session_bytes));
    }
    plan.max_bytes = req.max_bytes();
  }
  if (req.has_start_at()) {
    const absl::Time at = FromProtoTimestamp(req.start_at());
    if (at > limits.now + kMaxStartAhead) {
      return absl::InvalidArgumentError(absl::StrCat(
          "start_at ", absl::FormatTime(at), " is more than ",
          absl::FormatDuration(kMaxStartAhead), " ahead of this agent's clock (",
          absl::FormatTime(limits.now),
          "); a synchronised start is scheduled a moment ahead"));
    }
    plan.start_at = at;
  }
  return plan;
}

}  // namespace labtrace::agent
