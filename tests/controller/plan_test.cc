#include "controller/plan/plan.h"

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/testing/test_util.h"

namespace labtrace::controller {
namespace {

using ::testing::HasSubstr;

TEST(PlanTest, ParsesPhasesAndDefaults) {
  auto plan = ParsePlan(R"(
run: smoke
hosts: role=driver
defaults:
  profile: cpu
  timeout: 2m
  keep: on-failure
setup:
  - name: setup_env
    command: [/bin/sh, -c, "echo hi"]
tests:
  - name: unit_tests
    command: [/bin/true]
    profile: sched
    mode: memory
  - name: local_suite
    run_on: controller
    command: [/bin/true]
    strict: true
cleanup:
  - name: cleanup_env
    duration: 2s
)",
                        "p.yaml");
  ASSERT_TRUE(plan.ok()) << plan.status();
  EXPECT_EQ(plan->run, "smoke");
  EXPECT_EQ(plan->hosts, "role=driver");
  EXPECT_EQ(plan->keep, KeepPolicy::kOnFailure);
  ASSERT_EQ(plan->setup.size(), 1u);
  ASSERT_EQ(plan->tests.size(), 2u);
  ASSERT_EQ(plan->cleanup.size(), 1u);
  EXPECT_EQ(plan->setup[0].profile, "cpu");
  EXPECT_EQ(plan->setup[0].timeout, absl::Minutes(2));
  EXPECT_EQ(plan->setup[0].phase, "setup");
  EXPECT_EQ(plan->tests[0].profile, "sched");
  EXPECT_EQ(plan->tests[0].mode, v1::TRACE_MODE_MEMORY);
  EXPECT_EQ(plan->tests[0].phase, "test");
  EXPECT_EQ(plan->tests[1].run_on, RunOn::kController);
  EXPECT_TRUE(plan->tests[1].strict);
  EXPECT_TRUE(plan->cleanup[0].command.empty());
  EXPECT_EQ(plan->cleanup[0].duration, absl::Seconds(2));
}

TEST(PlanTest, ErrorsNameFileAndLine) {
  struct Case {
    const char* yaml;
    const char* expect;
  } cases[] = {
      {"tests: [{name: a}]\n", "needs `run"},
      {"run: r\ntests:\n  - {name: a}\n  - {name: a}\n", "p.yaml:4"},
      {"run: r\ntests:\n  - {name: a, comand: [x]}\n",
       "unknown step key \"comand\""},
      {"run: r\ntests:\n  - {name: a, command: \"sh -c x\"}\n",
       "non-empty list"},
      {"run: r\ntests:\n  - {name: a, run_on: moon}\n", "agent or controller"},
      {"run: r\ntests:\n  - {name: a, timeout: soon}\n", "positive duration"},
      {"run: r\ndefaults: {keep: never}\ntests: [{name: a}]\n",
       "always or on-failure"},
      {"run: r\n", "no steps"},
      {"run: \"bad run\"\ntests: [{name: a}]\n", "run"},
      {"run: r\ntests: [{name: \"a b\"}]\n", "step name"},
      {"run: r\ntests: [\n", "p.yaml:"},
  };
  for (const Case& c : cases) {
    auto plan = ParsePlan(c.yaml, "p.yaml");
    ASSERT_FALSE(plan.ok()) << c.yaml;
    EXPECT_THAT(std::string(plan.status().message()), HasSubstr(c.expect))
        << c.yaml;
  }
}

TEST(PlanTest, ExamplePlansInDeployParse) {
  for (const char* p :
       {"deploy/plans/quickstart.yaml", "deploy/plans/windows-lab.yaml"}) {
    auto plan = LoadPlan(testing::SourcePath(p).string());
    EXPECT_TRUE(plan.ok()) << p << ": " << plan.status();
  }
}

}  // namespace
}  // namespace labtrace::controller
