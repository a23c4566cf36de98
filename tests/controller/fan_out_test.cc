#include "controller/fleet/clock_sync.h"
#include "controller/fleet/fan_out.h"

#include "gtest/gtest.h"
#include "tests/controller/fake_agent_client.h"

namespace labtrace::controller {
namespace {

std::vector<Host> MakeHosts(int n) {
  std::vector<Host> hosts;
  for (int i = 0; i < n; ++i) {
    Host h;
    h.name = "h" + std::to_string(i);
    h.address = "127.0.0.1:1";
    hosts.push_back(h);
  }
  return hosts;
}

ClientFactory Factory(FakeFleetState* state,
                      std::map<std::string, std::string> behaviour) {
  return [state, behaviour](const Host& h) {
    auto it = behaviour.find(h.name);
    return std::make_unique<FakeAgentClient>(
        h, it == behaviour.end() ? "ok" : it->second, state);
  };
}

auto Info() {
  return [](AgentClient& c, const Host&, absl::Time d) {
    return c.GetAgentInfo(d);
  };
}

TEST(FanOutTest, ResultsInInputOrderWithOutcomes) {
  FakeFleetState state;
  ClientPool pool(
      Factory(&state, {{"h1", "refuse"}, {"h2", "down"}, {"h3", "hang"}}));
  FanOutOptions o;
  o.per_host_timeout = absl::Milliseconds(300);
  auto r = FanOut<v1::AgentInfo>(MakeHosts(5), pool, o, Info());
  ASSERT_EQ(r.size(), 5u);
  for (int i = 0; i < 5; ++i)
    EXPECT_EQ(r[i].host.name, "h" + std::to_string(i));
  EXPECT_EQ(r[0].outcome, HostOutcome::kOk);
  EXPECT_EQ(r[0].value.hostname(), "h0");
  EXPECT_EQ(r[1].outcome, HostOutcome::kFailed);
  EXPECT_EQ(r[2].outcome, HostOutcome::kUnreachable);
  EXPECT_EQ(r[3].outcome, HostOutcome::kTimedOut);
  EXPECT_EQ(r[4].outcome, HostOutcome::kOk);
  EXPECT_EQ(std::string(HostOutcomeName(r[3].outcome)), "timed_out");
}

TEST(FanOutTest, ConcurrencyBoundIsRespected) {
  FakeFleetState state;
  ClientPool pool(Factory(&state, {}));
  FanOutOptions o;
  o.parallel = 4;
  auto r = FanOut<v1::AgentInfo>(MakeHosts(40), pool, o, Info());
  EXPECT_EQ(r.size(), 40u);
  EXPECT_EQ(state.calls.load(), 40);
  EXPECT_LE(state.max_in_flight.load(), 4);
  EXPECT_GE(state.max_in_flight.load(), 2);  // It did run in parallel.
}

TEST(FanOutTest, HungHostsCostOnlyTheirDeadline) {
  FakeFleetState state;
  std::map<std::string, std::string> b;
  for (int i = 0; i < 10; ++i) b["h" + std::to_string(i)] = "hang";
  ClientPool pool(Factory(&state, b));
  FanOutOptions o;
  o.parallel = 32;
  o.per_host_timeout = absl::Milliseconds(300);
  const absl::Time start = absl::Now();
  auto r = FanOut<v1::AgentInfo>(MakeHosts(20), pool, o, Info());
  const absl::Duration took = absl::Now() - start;
  // All in parallel: about one deadline, not ten.
  EXPECT_LT(took, absl::Seconds(2));
  int timed_out = 0, ok = 0;
  for (const auto& x : r) {
    timed_out += x.outcome == HostOutcome::kTimedOut;
    ok += x.outcome == HostOutcome::kOk;
  }
  EXPECT_EQ(timed_out, 10);
  EXPECT_EQ(ok, 10);
}

TEST(FanOutTest, ClassifiesStatuses) {
  EXPECT_EQ(ClassifyStatus(absl::OkStatus()), HostOutcome::kOk);
  EXPECT_EQ(ClassifyStatus(absl::UnavailableError("x")),
            HostOutcome::kUnreachable);
  EXPECT_EQ(ClassifyStatus(absl::DeadlineExceededError("x")),
            HostOutcome::kTimedOut);
  EXPECT_EQ(ClassifyStatus(absl::NotFoundError("x")), HostOutcome::kFailed);
  EXPECT_EQ(ClassifyStatus(absl::DataLossError("x")), HostOutcome::kFailed);
}

TEST(FanOutTest, EmptyHostListAndClientReuse) {
  FakeFleetState state;
  int created = 0;
  ClientPool pool([&](const Host& h) {
    ++created;
    return std::make_unique<FakeAgentClient>(h, "ok", &state);
  });
  EXPECT_TRUE(FanOut<v1::AgentInfo>({}, pool, {}, Info()).empty());
  FanOut<v1::AgentInfo>(MakeHosts(3), pool, {}, Info());
  FanOut<v1::AgentInfo>(MakeHosts(3), pool, {}, Info());
  EXPECT_EQ(created, 3);
}


// NTP-style estimate: the agent's clock is read at the middle of the trip.
TEST(ClockSyncTest, OffsetFromTheMiddleOfTheRoundTrip) {
  const absl::Time t0 = absl::FromUnixSeconds(1000);
  const absl::Time t1 = t0 + absl::Milliseconds(10);
  // Agent 250 ms ahead: it read t0 + 5 ms + 250 ms.
  ClockEstimate e =
      EstimateFromSample(t0, t1, t0 + absl::Milliseconds(255));
  EXPECT_EQ(e.offset, absl::Milliseconds(250));
  EXPECT_EQ(e.rtt, absl::Milliseconds(10));
  EXPECT_EQ(AgentTime(t0, e), t0 + absl::Milliseconds(250));
  EXPECT_EQ(ControllerTime(AgentTime(t1, e), e), t1);
  // Behind.
  e = EstimateFromSample(t0, t1, t0 - absl::Seconds(2));
  EXPECT_EQ(e.offset, -absl::Seconds(2) - absl::Milliseconds(5));
}

TEST(ClockSyncTest, StartInstantLeavesRoomForEveryRequest) {
  const absl::Time now = absl::FromUnixSeconds(5000);
  std::vector<ClockEstimate> clocks = {
      {absl::ZeroDuration(), absl::Milliseconds(1)},
      {absl::Milliseconds(3), absl::Milliseconds(40)}};
  // At least the minimum lead; more for slow links and many waves.
  EXPECT_EQ(PickStartInstant(clocks, 2, 256, now), now + absl::Milliseconds(500));
  const absl::Time many = PickStartInstant(clocks, 10000, 256, now);
  EXPECT_GE(many - now, absl::Milliseconds(40) * 3 * 40);
  EXPECT_EQ(PickStartInstant({}, 0, 256, now), now + absl::Milliseconds(500));
}

}  // namespace
}  // namespace labtrace::controller
