// The real labtrace-agent binary with the real perf backend: start, load,
// stop, fetch, and `perf report -i` reads the fetched file.

#include "common/file_util.h"
#include "common/subprocess.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/testing/test_util.h"

namespace labtrace {
namespace {

using testing::Ctx;
using ::testing::HasSubstr;

class AgentPerfTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (std::string why = testing::PerfUnavailableReason(); !why.empty())
      GTEST_SKIP() << why;
    agent_ = std::make_unique<testing::AgentProcess>(
        testing::AgentProcess::Options{dir_.path() / "data", "", {}, {}});
    std::string error;
    ASSERT_TRUE(agent_->Start(&error)) << error;
  }

  // Start, run some load, stop, fetch, check with perf report.
  void RoundTrip(const std::string& name, const std::string& profile,
                 v1::TraceMode mode, const std::string& expect_in_report) {
    v1::StartTraceRequest req;
    req.set_name(name);
    req.set_profile(profile);
    req.set_mode(mode);
    v1::TraceSession s;
    grpc::Status st = agent_->stub().StartTrace(Ctx().get(), req, &s);
    ASSERT_TRUE(st.ok()) << st.error_message();
    EXPECT_EQ(s.backend(), "perf");

    subprocess::Options load;
    load.argv = {"/bin/sh", "-c",
                 "i=0; while [ $i -lt 30000 ]; do i=$((i+1)); done; sleep 0.2"};
    ASSERT_TRUE(subprocess::Run(load).ok());
    if (mode == v1::TRACE_MODE_FILE) {
      // perf writes as it goes: bytes recorded is visible while running.
      v1::GetTraceRequest g;
      g.set_name(name);
      ASSERT_TRUE(testing::WaitFor([&] {
        v1::TraceSession now;
        return agent_->stub().GetTrace(Ctx().get(), g, &now).ok() &&
               now.bytes_recorded() > 0 &&
               now.elapsed().nanos() + now.elapsed().seconds() > 0;
      }));
    }

    v1::StopTraceRequest stop;
    stop.set_name(name);
    v1::StopTraceResponse r;
    st = agent_->stub().StopTrace(Ctx(std::chrono::seconds(150)).get(), stop,
                                  &r);
    ASSERT_TRUE(st.ok()) << st.error_message();
    EXPECT_THAT(r.artifact().file_name(), HasSubstr(".perf.data"));
    const v1::TraceSummary& sum = r.artifact().summary();
    EXPECT_EQ(sum.format(), "perf");
    EXPECT_TRUE(sum.header_valid());
    EXPECT_GT(sum.data_size(), 0u);
    EXPECT_GT(sum.record_count(), 0u);
    EXPECT_TRUE(sum.record_count_complete());

    v1::FetchArtifactRequest f;
    f.set_artifact_id(r.artifact().id());
    auto ctx = Ctx();
    auto reader = agent_->stub().FetchArtifact(ctx.get(), f);
    std::string data;
    v1::ArtifactChunk c;
    while (reader->Read(&c)) data += c.data();
    ASSERT_TRUE(reader->Finish().ok());
    EXPECT_EQ(Sha256Hex(data), r.artifact().sha256());
    const auto local = dir_.path() / (name + ".perf.data");
    testing::WriteTextFile(local, data);

    subprocess::Options report;
    report.argv = {"perf",    "report", "-i",  local.string(),
                   "--stdio", "--sort", "comm"};
    report.timeout = std::chrono::seconds(120);
    report.output_cap = 1 << 20;
    subprocess::Result rr = subprocess::Run(report);
    ASSERT_TRUE(rr.ok()) << rr.Describe() << "\n" << rr.output;
    EXPECT_THAT(rr.output, HasSubstr(expect_in_report));
  }

  testing::TempDir dir_;
  std::unique_ptr<testing::AgentProcess> agent_;
};

TEST_F(AgentPerfTest, CpuProfileFileMode) {
  RoundTrip("cpu_file", "cpu", v1::TRACE_MODE_FILE, "# Samples:");
}

TEST_F(AgentPerfTest, CpuProfileMemoryMode) {
  RoundTrip("cpu_ring", "cpu", v1::TRACE_MODE_MEMORY, "# Samples:");
}

TEST_F(AgentPerfTest, SchedProfileRecordsSchedulerTracepoints) {
  RoundTrip("sched_file", "sched", v1::TRACE_MODE_FILE, "sched:sched_switch");
}

}  // namespace
}  // namespace labtrace
