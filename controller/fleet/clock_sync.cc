#include "controller/fleet/clock_sync.h"

#include <algorithm>
#include <thread>

#include "absl/strings/str_cat.h"
#include "common/proto_time.h"

namespace labtrace::controller {

ClockEstimate EstimateFromSample(absl::Time t0, absl::Time t1,
                                 absl::Time agent_now) {
  const absl::Duration rtt = t1 - t0;
  return {agent_now - (t0 + rtt / 2), rtt};
}

std::vector<HostResult<ClockEstimate>> EstimateClocks(
    const std::vector<Host>& hosts, ClientPool& clients,
    const FanOutOptions& options, int samples) {
  return FanOut<ClockEstimate>(
      hosts, clients, options,
      [&](AgentClient& c, const Host& h,
          absl::Time deadline) -> absl::StatusOr<ClockEstimate> {
        ClockEstimate best{absl::ZeroDuration(), absl::InfiniteDuration()};
        for (int i = 0; i < std::max(samples, 1); ++i) {
          const absl::Time t0 = options.clock();
          absl::StatusOr<v1::AgentInfo> info = c.GetAgentInfo(deadline);
          const absl::Time t1 = options.clock();
          if (!info.ok()) return info.status();
          if (!info->has_now()) {
            return absl::FailedPreconditionError(absl::StrCat(
                h.name, " runs labtrace-agent ", info->version(),
                ", which cannot start at an agreed instant (no AgentInfo.now);"
                " upgrade it or start without --sync"));
          }
          const ClockEstimate e =
              EstimateFromSample(t0, t1, FromProtoTimestamp(info->now()));
          if (e.rtt < best.rtt) best = e;
        }
        return best;
      });
}

absl::Time PickStartInstant(const std::vector<ClockEstimate>& clocks,
                            std::size_t hosts, int parallel, absl::Time now,
                            absl::Duration min_lead) {
  absl::Duration slowest = absl::ZeroDuration();
  for (const ClockEstimate& c : clocks) slowest = std::max(slowest, c.rtt);
  // Requests go out `parallel` at a time: waves of at least one round trip.
  const std::size_t waves =
      (hosts + static_cast<std::size_t>(std::max(parallel, 1)) - 1) /
      static_cast<std::size_t>(std::max(parallel, 1));
  const absl::Duration lead =
      std::max(min_lead, slowest * 3 * static_cast<double>(std::max<std::size_t>(waves, 1)) +
                             absl::Milliseconds(200));
  return now + lead;
}

SyncStartResult SyncStart(const std::vector<Host>& hosts, ClientPool& clients,
                          const FanOutOptions& options,
                          const v1::StartTraceRequest& req,
                          const std::map<std::string, ClockEstimate>* known) {
  SyncStartResult out;
  std::map<std::string, HostResult<v1::TraceSession>> by_host;
  std::vector<Host> reachable;
  if (known != nullptr) {
    for (const Host& h : hosts) {
      if (auto it = known->find(h.name); it != known->end()) {
        out.clocks[h.name] = it->second;
        reachable.push_back(h);
      } else {
        by_host[h.name] = {h, HostOutcome::kFailed,
                           absl::FailedPreconditionError(
                               "clock unknown: not started (synchronised)"),
                           {}, absl::ZeroDuration()};
      }
    }
  } else {
    for (auto& r : EstimateClocks(hosts, clients, options)) {
      if (r.outcome == HostOutcome::kOk) {
        out.clocks[r.host.name] = r.value;
        reachable.push_back(r.host);
      } else {
        by_host[r.host.name] = {r.host, r.outcome, r.status, {}, r.took};
      }
    }
  }
  std::vector<ClockEstimate> all;
  for (const auto& [h, c] : out.clocks) all.push_back(c);
  out.instant = PickStartInstant(all, reachable.size(), options.parallel,
                                 options.clock());
  // Prepare: every agent answers at once (STARTING).
  std::vector<Host> prepared;
  for (auto& r : FanOut<v1::TraceSession>(
           reachable, clients, options,
           [&](AgentClient& c, const Host& h, absl::Time d) {
             v1::StartTraceRequest mine = req;
             *mine.mutable_start_at() =
                 ToProtoTimestamp(AgentTime(out.instant, out.clocks.at(h.name)));
             return c.StartTrace(mine, d);
           })) {
    if (r.outcome == HostOutcome::kOk) prepared.push_back(r.host);
    by_host[r.host.name] = std::move(r);
  }
  // Commit happens on the agents at the instant; then read what happened.
  absl::Duration slowest = absl::ZeroDuration();
  for (const ClockEstimate& c : all) slowest = std::max(slowest, c.rtt);
  const absl::Duration wait =
      out.instant + slowest + absl::Milliseconds(50) - options.clock();
  if (wait > absl::ZeroDuration()) absl::SleepFor(wait);
  auto after = FanOut<v1::TraceSession>(
      prepared, clients, options,
      [&](AgentClient& c, const Host&,
          absl::Time d) -> absl::StatusOr<v1::TraceSession> {
        // Until it leaves STARTING (a tool may take a moment to start).
        for (;;) {
          absl::StatusOr<v1::ListTracesResponse> l = c.ListTraces(true, d);
          if (!l.ok()) return l.status();
          const v1::TraceSession* mine = nullptr;
          for (const v1::TraceSession& s : l->sessions()) {
            if (s.name() == req.name()) mine = &s;  // The newest wins.
          }
          if (mine == nullptr) {
            return absl::NotFoundError(absl::StrCat(
                "trace \"", req.name(), "\" vanished before it started"));
          }
          if (mine->state() == v1::TRACE_STATE_RUNNING) return *mine;
          if (mine->state() != v1::TRACE_STATE_STARTING) {
            return absl::AbortedError(absl::StrCat(
                "did not start at the agreed instant: ",
                v1::TraceState_Name(mine->state()),
                mine->failure_reason().empty() ? "" : ": ",
                mine->failure_reason()));
          }
          if (options.clock() + absl::Milliseconds(50) > d) {
            return absl::DeadlineExceededError(
                "still STARTING after the agreed instant");
          }
          absl::SleepFor(absl::Milliseconds(20));
        }
      });
  absl::Time first = absl::InfiniteFuture(), last = absl::InfinitePast();
  for (auto& r : after) {
    if (r.outcome == HostOutcome::kOk) {
      const absl::Time t = ControllerTime(FromProtoTimestamp(r.value.start_time()),
                                          out.clocks.at(r.host.name));
      first = std::min(first, t);
      last = std::max(last, t);
      ++out.started;
    }
    by_host[r.host.name] = std::move(r);
  }
  if (out.started > 0) {
    out.spread = last - first;
    out.latest_late = last - out.instant;
  }
  for (const Host& h : hosts) out.results.push_back(std::move(by_host[h.name]));
  return out;
}

absl::Time AgentTime(absl::Time controller_time, const ClockEstimate& c) {
  return controller_time + c.offset;
}

absl::Time ControllerTime(absl::Time agent_time, const ClockEstimate& c) {
  return agent_time - c.offset;
}

}  // namespace labtrace::controller
