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

}  // namespace
}  // namespace labtrace::controller
