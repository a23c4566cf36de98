// FakeAgentClient: an in-process AgentClient whose answers and delays the
// test sets. Every call records itself; `in_flight` counts concurrent calls.

#ifndef LABTRACE_TESTS_CONTROLLER_FAKE_AGENT_CLIENT_H_
#define LABTRACE_TESTS_CONTROLLER_FAKE_AGENT_CLIENT_H_

#include <atomic>
#include <thread>

#include "controller/client/agent_client.h"

namespace labtrace::controller {

struct FakeFleetState {
  std::atomic<int> in_flight{0};
  std::atomic<int> max_in_flight{0};
  std::atomic<int> calls{0};
};

class FakeAgentClient final : public AgentClient {
 public:
  // `behaviour`: "ok", "refuse", "down" (UNAVAILABLE at once), "hang" (no
  // answer until the deadline), or "slow" (answers after `delay`).
  FakeAgentClient(Host host, std::string behaviour, FakeFleetState* state,
                  absl::Duration delay = absl::Milliseconds(20))
      : host_(std::move(host)),
        behaviour_(std::move(behaviour)),
        state_(state),
        delay_(delay) {}

  absl::StatusOr<v1::AgentInfo> GetAgentInfo(absl::Time deadline) override {
    absl::Status s = Behave(deadline);
    if (!s.ok()) return s;
    v1::AgentInfo info;
    info.set_hostname(host_.name);
    return info;
  }
  absl::StatusOr<v1::TraceSession> StartTrace(const v1::StartTraceRequest& req,
                                              absl::Time deadline) override {
    absl::Status s = Behave(deadline);
    if (!s.ok()) return s;
    v1::TraceSession t;
    t.set_name(req.name());
    t.set_state(v1::TRACE_STATE_RUNNING);
    return t;
  }
  absl::StatusOr<v1::StopTraceResponse> StopTrace(
      const std::string& name, absl::Time deadline) override {
    absl::Status s = Behave(deadline);
    if (!s.ok()) return s;
    v1::StopTraceResponse r;
    r.mutable_session()->set_name(name);
    return r;
  }
  absl::StatusOr<v1::TraceSession> CancelTrace(const std::string& name,
                                               absl::Time deadline) override {
    absl::Status s = Behave(deadline);
    if (!s.ok()) return s;
    v1::TraceSession t;
    t.set_name(name);
    return t;
  }
  absl::StatusOr<v1::ListTracesResponse> ListTraces(
      bool, absl::Time deadline) override {
    absl::Status s = Behave(deadline);
    if (!s.ok()) return s;
    return v1::ListTracesResponse();
  }
  absl::StatusOr<v1::StopAllTracesResponse> StopAllTraces(
      bool, absl::Time deadline) override {
    absl::Status s = Behave(deadline);
    if (!s.ok()) return s;
    return v1::StopAllTracesResponse();
  }
  absl::StatusOr<v1::ListArtifactsResponse> ListArtifacts(
      const v1::ListArtifactsRequest&, absl::Time deadline) override {
    absl::Status s = Behave(deadline);
    if (!s.ok()) return s;
    return v1::ListArtifactsResponse();
  }
  absl::StatusOr<v1::DeleteArtifactResponse> DeleteArtifact(
      const std::string&, absl::Time deadline) override {
    absl::Status s = Behave(deadline);
    if (!s.ok()) return s;
    return v1::DeleteArtifactResponse();
  }
  absl::StatusOr<v1::RunCommandResponse> RunCommand(
      const v1::RunCommandRequest&, absl::Time deadline) override {
    absl::Status s = Behave(deadline);
    if (!s.ok()) return s;
    v1::RunCommandResponse r;
    r.set_started(true);
    return r;
  }
  absl::Status FetchArtifact(
      const std::string&, std::uint64_t,
      const std::function<absl::Status(const v1::ArtifactChunk&)>&,
      absl::Time deadline) override {
    return Behave(deadline);
  }

 private:
  absl::Status Behave(absl::Time deadline) {
    ++state_->calls;
    const int now = ++state_->in_flight;
    int prev = state_->max_in_flight.load();
    while (now > prev &&
           !state_->max_in_flight.compare_exchange_weak(prev, now)) {
    }
    absl::Status s;
    if (behaviour_ == "down") {
      s = absl::UnavailableError(host_.name + " unreachable");
    } else if (behaviour_ == "hang") {
      std::this_thread::sleep_for(
          absl::ToChronoMilliseconds(deadline - absl::Now()));
      s = absl::DeadlineExceededError(host_.name + " timed out");
    } else {
      std::this_thread::sleep_for(absl::ToChronoMilliseconds(delay_));
      if (behaviour_ == "refuse")
        s = absl::FailedPreconditionError(host_.name + " refuses");
    }
    --state_->in_flight;
    return s;
  }

  Host host_;
  std::string behaviour_;
  FakeFleetState* state_;
  absl::Duration delay_;
};

}  // namespace labtrace::controller

#endif  // LABTRACE_TESTS_CONTROLLER_FAKE_AGENT_CLIENT_H_
