// The real labtrace-agent binary on a loopback port, driven over gRPC, with
// the WPR backend pointed at tests/tools/fake_wpr and real ETL files.

#include <atomic>
#include <thread>

#include "common/file_util.h"
#include "common/proto_time.h"
#include "common/zstd_codec.h"
#include "gmock/gmock.h"
#include "grpc/health/v1/health.grpc.pb.h"
#include "grpc/reflection/v1alpha/reflection.grpc.pb.h"
#include "gtest/gtest.h"
#include "tests/testing/test_util.h"

namespace labtrace {
namespace {

using testing::Ctx;
using ::testing::HasSubstr;

constexpr char kWprConfig[] = R"(
limits:
  max_sessions: 6
wpr:
  path: %WPR%
  stop_timeout: 20s
profiles:
  - name: general
    backend: wpr
    description: built-in general profile
    args: [GeneralProfile]
  - name: default
    backend: wpr
    args: ["embedded:labtrace.wprp!Labtrace"]
  - name: broken
    backend: wpr
    args: [invalid.wprp!Nope]
)";

class AgentWprTest : public ::testing::Test {
 protected:
  void SetUp() override {
    etl_ = testing::TestdataEtl("airbus_ShutdownPerfDiagLogger.etl");
    if (etl_.empty())
      GTEST_SKIP() << "../shared/testdata/etl is not beside this checkout";
    state_ = dir_.path() / "wpr_state";
    std::filesystem::create_directories(state_);
    std::string cfg = kWprConfig;
    cfg.replace(cfg.find("%WPR%"), 5, testing::FakeWprBinary());
    agent_ =
        std::make_unique<testing::AgentProcess>(testing::AgentProcess::Options{
            dir_.path() / "data",
            cfg,
            {},
            {"FAKE_WPR_STATE_DIR=" + state_.string(),
             "FAKE_WPR_ETL_SOURCE=" + etl_.string()}});
    std::string error;
    ASSERT_TRUE(agent_->Start(&error)) << error;
  }

  absl::StatusOr<v1::TraceSession> Start(
      const std::string& name, const std::string& profile = "general",
      v1::TraceMode mode = v1::TRACE_MODE_FILE) {
    v1::StartTraceRequest req;
    req.set_name(name);
    req.set_profile(profile);
    req.set_mode(mode);
    req.set_run_id("run42");
    v1::TraceSession resp;
    grpc::Status s = agent_->stub().StartTrace(Ctx().get(), req, &resp);
    if (!s.ok())
      return absl::Status(static_cast<absl::StatusCode>(s.error_code()),
                          s.error_message());
    return resp;
  }

  grpc::Status Stop(const std::string& name, v1::StopTraceResponse* resp) {
    v1::StopTraceRequest req;
    req.set_name(name);
    return agent_->stub().StopTrace(Ctx().get(), req, resp);
  }

  // Downloads from `offset`; returns the bytes, fills total size and digest.
  grpc::Status Fetch(const std::string& id, std::uint64_t offset,
                     std::string* data, std::uint64_t* total = nullptr,
                     std::string* sha = nullptr, std::uint32_t chunk = 0,
                     int max_messages = -1, bool zstd = false,
                     int* compressed_chunks = nullptr,
                     std::uint64_t* wire_bytes = nullptr) {
    v1::FetchArtifactRequest req;
    req.set_artifact_id(id);
    req.set_offset(offset);
    req.set_chunk_size(chunk);
    if (zstd) req.set_compression(v1::COMPRESSION_ZSTD);
    auto ctx = Ctx();
    auto reader = agent_->stub().FetchArtifact(ctx.get(), req);
    v1::ArtifactChunk c;
    bool first = true;
    int n = 0;
    std::uint64_t received = 0;
    while (reader->Read(&c)) {
      if (first) {
        if (total) *total = c.total_size();
        if (sha) *sha = c.sha256();
        first = false;
      }
      EXPECT_EQ(c.offset(), offset + received);
      if (wire_bytes) *wire_bytes += c.data().size();
      if (c.compression() == v1::COMPRESSION_ZSTD) {
        EXPECT_TRUE(zstd);
        if (compressed_chunks) ++*compressed_chunks;
        std::string raw;
        const absl::Status s = zstd::DecompressChunk(c.data(), c.raw_size(), &raw);
        EXPECT_TRUE(s.ok()) << s;
        c.mutable_data()->swap(raw);
      }
      received += c.data().size();
      data->append(c.data());
      if (max_messages > 0 && ++n >= max_messages) {
        ctx->TryCancel();
        break;
      }
    }
    return reader->Finish();
  }

  testing::TempDir dir_;
  std::filesystem::path etl_;
  std::filesystem::path state_;
  std::unique_ptr<testing::AgentProcess> agent_;
};

TEST_F(AgentWprTest, InfoListsBackendsProfilesAndLimits) {
  v1::AgentInfo info;
  ASSERT_TRUE(agent_->stub().GetAgentInfo(Ctx().get(), {}, &info).ok());
  EXPECT_EQ(info.version(), LABTRACE_VERSION);
  EXPECT_FALSE(info.hostname().empty());
  EXPECT_THAT(info.os(), HasSubstr("Linux"));
  EXPECT_EQ(info.limits().max_sessions(), 6);
  EXPECT_EQ(info.limits().max_duration().seconds(), 4 * 3600);
  ASSERT_EQ(info.profiles_size(), 3);
  EXPECT_EQ(info.profiles(0).name(), "general");
  EXPECT_EQ(info.profiles(0).modes_size(), 2);
  bool wpr_available = false;
  for (const auto& b : info.backends()) {
    if (b.name() == "wpr") wpr_available = b.available();
  }
  EXPECT_TRUE(wpr_available);
  EXPECT_GT(info.free_disk_bytes(), 0u);
}

TEST_F(AgentWprTest, StartStopFetchVerifiesDigestAndResumes) {
  auto s = Start("unit_tests");
  ASSERT_TRUE(s.ok()) << s.status();
  EXPECT_EQ(s->state(), v1::TRACE_STATE_RUNNING);
  v1::TraceSession got;
  v1::GetTraceRequest g;
  g.set_name("unit_tests");
  ASSERT_TRUE(agent_->stub().GetTrace(Ctx().get(), g, &got).ok());
  EXPECT_EQ(got.state(), v1::TRACE_STATE_RUNNING);

  v1::StopTraceResponse stopped;
  ASSERT_TRUE(Stop("unit_tests", &stopped).ok());
  const v1::Artifact& a = stopped.artifact();
  EXPECT_THAT(a.file_name(),
              ::testing::MatchesRegex("unit_tests_[0-9]{8}_[0-9]{6}\\.etl"));
  EXPECT_EQ(a.sha256(), *Sha256File(etl_));
  EXPECT_EQ(a.size_bytes(), std::filesystem::file_size(etl_));
  EXPECT_EQ(a.backend(), "wpr");
  EXPECT_EQ(a.run_id(), "run42");
  // The ETL summary, computed at stop.
  EXPECT_EQ(a.summary().format(), "etl");
  EXPECT_TRUE(a.summary().header_valid());
  EXPECT_EQ(a.summary().logger_name(), "PerfDiag Logger");
  EXPECT_EQ(a.summary().record_count(), 17078u);
  EXPECT_EQ(a.summary().buffers_found(), 49u);
  EXPECT_EQ(a.summary().problems_size(), 0);

  // Whole file, in 64 KiB chunks.
  std::string all;
  std::uint64_t total = 0;
  std::string sha;
  grpc::Status fs = Fetch(a.id(), 0, &all, &total, &sha, 64 * 1024);
  ASSERT_TRUE(fs.ok()) << fs.error_message();
  EXPECT_EQ(total, a.size_bytes());
  EXPECT_EQ(sha, a.sha256());
  EXPECT_EQ(Sha256Hex(all), a.sha256());

  // A broken download: two chunks, then the client goes away; resume.
  std::string part;
  Fetch(a.id(), 0, &part, nullptr, nullptr, 64 * 1024, 2);
  ASSERT_EQ(part.size(), 128u * 1024);
  ASSERT_TRUE(Fetch(a.id(), part.size(), &part).ok());
  EXPECT_EQ(Sha256Hex(part), a.sha256());

  // At the end: one empty message, OK. Past the end: OUT_OF_RANGE.
  std::string none;
  EXPECT_TRUE(Fetch(a.id(), a.size_bytes(), &none).ok());
  EXPECT_TRUE(none.empty());
  grpc::Status past = Fetch(a.id(), a.size_bytes() + 1, &none);
  EXPECT_EQ(past.error_code(), grpc::StatusCode::OUT_OF_RANGE);
  EXPECT_THAT(past.error_message(), HasSubstr("past the end"));
  EXPECT_EQ(Fetch("nope", 0, &none).error_code(), grpc::StatusCode::NOT_FOUND);
  EXPECT_EQ(Fetch(a.id(), 0, &none, nullptr, nullptr, 64 << 20).error_code(),
            grpc::StatusCode::INVALID_ARGUMENT);

  // Stop again returns the same artifact.
  v1::StopTraceResponse again;
  ASSERT_TRUE(Stop("unit_tests", &again).ok());
  EXPECT_EQ(again.artifact().id(), a.id());

  // List, get, delete.
  v1::ListArtifactsResponse list;
  v1::ListArtifactsRequest lreq;
  lreq.set_run_id("run42");
  ASSERT_TRUE(agent_->stub().ListArtifacts(Ctx().get(), lreq, &list).ok());
  ASSERT_EQ(list.artifacts_size(), 1);
  v1::DeleteArtifactRequest del;
  del.set_artifact_id(a.id());
  v1::DeleteArtifactResponse freed;
  ASSERT_TRUE(agent_->stub().DeleteArtifact(Ctx().get(), del, &freed).ok());
  EXPECT_EQ(freed.freed_bytes(), a.size_bytes());
  v1::GetArtifactRequest gar;
  gar.set_artifact_id(a.id());
  v1::Artifact gone;
  EXPECT_EQ(agent_->stub().GetArtifact(Ctx().get(), gar, &gone).error_code(),
            grpc::StatusCode::NOT_FOUND);
}

// Compressed downloads: each chunk an independent zstd frame of the
// original bytes, so a resumed download decodes alone; the digest is the
// file's.
TEST_F(AgentWprTest, ZstdFetchDecodesToTheSameBytesFromAnyOffset) {
  ASSERT_TRUE(Start("packed").ok());
  v1::StopTraceResponse r;
  ASSERT_TRUE(Stop("packed", &r).ok());
  const std::string want = testing::ReadTextFile(etl_);
  std::string data, sha;
  int packed = 0;
  std::uint64_t wire = 0;
  ASSERT_TRUE(Fetch(r.artifact().id(), 0, &data, nullptr, &sha, 256 << 10, -1,
                    /*zstd=*/true, &packed, &wire)
                  .ok());
  EXPECT_EQ(data, want);
  EXPECT_EQ(Sha256Hex(data), sha);
  EXPECT_GT(packed, 0);
  EXPECT_LT(wire, want.size() / 4) << "the ETL should compress well";
  // From the middle of the file, not on a chunk boundary.
  std::string rest;
  const std::uint64_t from = want.size() / 3 + 17;
  ASSERT_TRUE(Fetch(r.artifact().id(), from, &rest, nullptr, nullptr, 0, -1,
                    /*zstd=*/true)
                  .ok());
  EXPECT_EQ(rest, want.substr(from));
  // Without asking, nothing is compressed.
  std::string plain;
  packed = 0;
  ASSERT_TRUE(Fetch(r.artifact().id(), 0, &plain, nullptr, nullptr, 0, -1,
                    /*zstd=*/false, &packed)
                  .ok());
  EXPECT_EQ(packed, 0);
  EXPECT_EQ(plain, want);
}

TEST_F(AgentWprTest, EmbeddedProfileIsWrittenAndUsedInBothModes) {
  ASSERT_TRUE(Start("emb_file", "default", v1::TRACE_MODE_FILE).ok());
  ASSERT_TRUE(Start("emb_mem", "default", v1::TRACE_MODE_MEMORY).ok());
  const auto wprp = dir_.path() / "data" / "profiles" / "labtrace.wprp";
  ASSERT_TRUE(std::filesystem::exists(wprp));
  EXPECT_THAT(testing::ReadTextFile(wprp), HasSubstr("LoggingMode=\"Memory\""));
  const std::string calls = testing::ReadTextFile(state_ / "calls.log");
  EXPECT_THAT(calls, HasSubstr("-start " + wprp.string() +
                               "!Labtrace -filemode -recordtempto "));
  EXPECT_THAT(calls, HasSubstr("-start " + wprp.string() +
                               "!Labtrace -instancename labtrace_emb_mem"));
  v1::StopTraceResponse r;
  EXPECT_TRUE(Stop("emb_file", &r).ok());
  EXPECT_TRUE(Stop("emb_mem", &r).ok());
  EXPECT_EQ(r.artifact().mode(), v1::TRACE_MODE_MEMORY);
}

TEST_F(AgentWprTest, ConcurrentSessions) {
  constexpr int kN = 6;
  std::vector<std::thread> threads;
  std::atomic<int> ok{0};
  for (int i = 0; i < kN; ++i) {
    threads.emplace_back([&, i] {
      const std::string name = "step" + std::to_string(i);
      if (!Start(name).ok()) return;
      v1::StopTraceResponse r;
      if (Stop(name, &r).ok() && r.artifact().sha256() == *Sha256File(etl_))
        ++ok;
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(ok.load(), kN);
  v1::ListArtifactsResponse list;
  ASSERT_TRUE(agent_->stub().ListArtifacts(Ctx().get(), {}, &list).ok());
  EXPECT_EQ(list.artifacts_size(), kN);
}

TEST_F(AgentWprTest, BadInputGetsPreciseCodesAndDisturbsNothing) {
  ASSERT_TRUE(Start("survivor").ok());
  struct Case {
    std::string name;
    std::string profile;
    absl::StatusCode code;
  } cases[] = {
      {"../x", "general", absl::StatusCode::kInvalidArgument},
      {"", "general", absl::StatusCode::kInvalidArgument},
      {std::string(65, 'n'), "general", absl::StatusCode::kInvalidArgument},
      {"has space", "general", absl::StatusCode::kInvalidArgument},
      {"ok", "no_such_profile", absl::StatusCode::kNotFound},
      {"ok", "../../etc/passwd", absl::StatusCode::kNotFound},
      {"survivor", "general", absl::StatusCode::kAlreadyExists},
      {"schema", "broken", absl::StatusCode::kInvalidArgument},
  };
  for (const Case& c : cases) {
    auto s = Start(c.name, c.profile);
    EXPECT_EQ(s.status().code(), c.code)
        << c.name << " / " << c.profile << ": " << s.status();
  }
  v1::StopTraceResponse r;
  EXPECT_EQ(Stop("unknown", &r).error_code(), grpc::StatusCode::NOT_FOUND);
  v1::CancelTraceRequest cancel;
  cancel.set_name("unknown");
  v1::TraceSession ts;
  EXPECT_EQ(agent_->stub().CancelTrace(Ctx().get(), cancel, &ts).error_code(),
            grpc::StatusCode::NOT_FOUND);
  v1::GetArtifactRequest ga;
  ga.set_artifact_id("../../etc/passwd");
  v1::Artifact a;
  EXPECT_EQ(agent_->stub().GetArtifact(Ctx().get(), ga, &a).error_code(),
            grpc::StatusCode::NOT_FOUND);
  v1::StartTraceRequest bad_mode;
  bad_mode.set_name("m");
  bad_mode.set_profile("general");
  bad_mode.set_mode(static_cast<v1::TraceMode>(99));
  EXPECT_EQ(agent_->stub().StartTrace(Ctx().get(), bad_mode, &ts).error_code(),
            grpc::StatusCode::INVALID_ARGUMENT);

  // The survivor is still running and stops cleanly.
  ASSERT_TRUE(Stop("survivor", &r).ok());
  EXPECT_EQ(r.session().state(), v1::TRACE_STATE_COMPLETED);
}

TEST_F(AgentWprTest, StopAllAndCancel) {
  for (const char* n : {"a", "b", "c"}) ASSERT_TRUE(Start(n).ok());
  v1::CancelTraceRequest cancel;
  cancel.set_name("c");
  v1::TraceSession ts;
  ASSERT_TRUE(agent_->stub().CancelTrace(Ctx().get(), cancel, &ts).ok());
  EXPECT_EQ(ts.state(), v1::TRACE_STATE_CANCELLED);
  v1::StopAllTracesResponse all;
  ASSERT_TRUE(agent_->stub().StopAllTraces(Ctx().get(), {}, &all).ok());
  ASSERT_EQ(all.results_size(), 2);
  for (const auto& r : all.results()) {
    EXPECT_EQ(r.error(), "");
    EXPECT_EQ(r.session().state(), v1::TRACE_STATE_COMPLETED);
    EXPECT_EQ(r.artifact().sha256(), *Sha256File(etl_));
  }
  ASSERT_TRUE(agent_->stub().StopAllTraces(Ctx().get(), {}, &all).ok());
  EXPECT_EQ(all.results_size(), 0);
  v1::ListTracesRequest lr;
  lr.set_include_finished(true);
  v1::ListTracesResponse list;
  ASSERT_TRUE(agent_->stub().ListTraces(Ctx().get(), lr, &list).ok());
  EXPECT_EQ(list.sessions_size(), 3);
}

TEST_F(AgentWprTest, RestartAfterCrashRecoversFromJournal) {
  ASSERT_TRUE(Start("crashy").ok());
  agent_->Crash();
  // The fake wpr instance is still "running", as ETW would be.
  EXPECT_TRUE(
      std::filesystem::exists(state_ / "instances" / "labtrace_crashy"));
  std::string error;
  ASSERT_TRUE(agent_->Start(&error)) << error;
  EXPECT_FALSE(
      std::filesystem::exists(state_ / "instances" / "labtrace_crashy"));
  v1::GetTraceRequest g;
  g.set_name("crashy");
  v1::TraceSession ts;
  ASSERT_TRUE(agent_->stub().GetTrace(Ctx().get(), g, &ts).ok());
  // The recording was salvaged: wpr -stop into the journaled work dir, the
  // file stored as an artifact that says how it was made.
  EXPECT_EQ(ts.state(), v1::TRACE_STATE_COMPLETED) << ts.failure_reason();
  EXPECT_EQ(ts.stop_reason(), "salvaged");
  ASSERT_FALSE(ts.artifact_id().empty());
  v1::GetArtifactRequest ga;
  ga.set_artifact_id(ts.artifact_id());
  v1::Artifact a;
  ASSERT_TRUE(agent_->stub().GetArtifact(Ctx().get(), ga, &a).ok());
  EXPECT_TRUE(a.salvaged());
  EXPECT_THAT(a.salvage_note(),
              HasSubstr("stopped while this session was RUNNING"));
  EXPECT_EQ(a.sha256(), *Sha256File(etl_));
  // The name is usable again.
  EXPECT_TRUE(Start("crashy").ok());
}

TEST_F(AgentWprTest, GracefulShutdownKeepsActiveTraces) {
  ASSERT_TRUE(Start("kept").ok());
  subprocess::Result r = agent_->Stop();
  EXPECT_TRUE(r.ok()) << r.Describe() << r.output;
  std::string error;
  ASSERT_TRUE(agent_->Start(&error)) << error;
  v1::ListArtifactsRequest lr;
  lr.set_name("kept");
  v1::ListArtifactsResponse list;
  ASSERT_TRUE(agent_->stub().ListArtifacts(Ctx().get(), lr, &list).ok());
  ASSERT_EQ(list.artifacts_size(), 1);
  EXPECT_EQ(list.artifacts(0).sha256(), *Sha256File(etl_));
}

TEST_F(AgentWprTest, HealthAndReflectionForStockTools) {
  auto health = grpc::health::v1::Health::NewStub(agent_->channel());
  grpc::health::v1::HealthCheckResponse hr;
  ASSERT_TRUE(health->Check(Ctx().get(), {}, &hr).ok());
  EXPECT_EQ(hr.status(), grpc::health::v1::HealthCheckResponse::SERVING);

  auto reflection =
      grpc::reflection::v1alpha::ServerReflection::NewStub(agent_->channel());
  auto ctx = Ctx();
  auto stream = reflection->ServerReflectionInfo(ctx.get());
  grpc::reflection::v1alpha::ServerReflectionRequest req;
  req.set_list_services("");
  ASSERT_TRUE(stream->Write(req));
  grpc::reflection::v1alpha::ServerReflectionResponse resp;
  ASSERT_TRUE(stream->Read(&resp));
  std::vector<std::string> names;
  for (const auto& s : resp.list_services_response().service())
    names.push_back(s.name());
  EXPECT_THAT(names, ::testing::Contains("labtrace.v1.TraceAgent"));
  // The descriptor of our service is served, so tools need no .proto.
  req.set_file_containing_symbol("labtrace.v1.TraceAgent");
  ASSERT_TRUE(stream->Write(req));
  ASSERT_TRUE(stream->Read(&resp));
  EXPECT_GT(resp.file_descriptor_response().file_descriptor_proto_size(), 0);
  stream->WritesDone();
  EXPECT_TRUE(stream->Finish().ok());
}

}  // namespace
}  // namespace labtrace

namespace labtrace {
namespace {

using testing::Ctx;
using ::testing::HasSubstr;

// RunCommand: an allow-listed program under a trace of its own.
class AgentExecTest : public ::testing::Test {
 protected:
  void SetUp() override {
    etl_ = testing::TestdataEtl("krabsetw_powershell.etl");
    if (etl_.empty())
      GTEST_SKIP() << "../shared/testdata/etl is not beside this checkout";
  }

  // Called by tests after SetUp (which skips the test when the data is
  // missing; a helper's GTEST_SKIP would only leave the helper).
  void Launch(const std::string& exec_yaml) {
    state_ = dir_.path() / "wpr_state";
    std::filesystem::create_directories(state_);
    std::string cfg =
        "wpr:\n  path: " + testing::FakeWprBinary() +
        "\nprofiles:\n  - {name: general, backend: wpr, args: "
        "[GeneralProfile]}\n"
        "  - {name: broken, backend: wpr, args: [invalid.wprp!X]}\n" +
        exec_yaml;
    agent_ =
        std::make_unique<testing::AgentProcess>(testing::AgentProcess::Options{
            dir_.path() / "data",
            cfg,
            {},
            {"FAKE_WPR_STATE_DIR=" + state_.string(),
             "FAKE_WPR_ETL_SOURCE=" + etl_.string()}});
    std::string error;
    ASSERT_TRUE(agent_->Start(&error)) << error;
  }

  grpc::Status Run(const std::vector<std::string>& argv,
                   v1::RunCommandResponse* resp,
                   const std::string& profile = "general", int timeout_s = 0,
                   bool strict = false) {
    v1::RunCommandRequest req;
    req.mutable_trace()->set_name("step1");
    req.mutable_trace()->set_profile(profile);
    req.mutable_trace()->set_run_id("r1");
    for (const auto& a : argv) req.add_argv(a);
    if (timeout_s > 0) req.mutable_timeout()->set_seconds(timeout_s);
    req.set_strict(strict);
    return agent_->stub().RunCommand(Ctx().get(), req, resp);
  }

  testing::TempDir dir_;
  std::filesystem::path etl_, state_;
  std::unique_ptr<testing::AgentProcess> agent_;
};

TEST_F(AgentExecTest, DisabledByDefault) {
  Launch("");
  v1::RunCommandResponse r;
  grpc::Status s = Run({"/bin/echo", "hi"}, &r);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::FAILED_PRECONDITION);
  EXPECT_THAT(s.error_message(), HasSubstr("disabled"));
}

TEST_F(AgentExecTest, AllowListedProgramRunsUnderItsTrace) {
  Launch("exec:\n  enabled: true\n  allow: [/bin/sh, /bin/sleep]\n");
  v1::RunCommandResponse r;
  grpc::Status s =
      Run({"/bin/sh", "-c", "echo hello from step; echo oops >&2; exit 3"}, &r);
  ASSERT_TRUE(s.ok()) << s.error_message();
  EXPECT_TRUE(r.started());
  EXPECT_EQ(r.exit_code(), 3);
  EXPECT_THAT(r.output_tail(), HasSubstr("hello from step"));
  EXPECT_THAT(r.output_tail(), HasSubstr("oops"));
  EXPECT_EQ(r.trace_error(), "");
  EXPECT_EQ(r.trace_artifact().sha256(), *Sha256File(etl_));
  EXPECT_THAT(r.trace_artifact().file_name(), ::testing::EndsWith(".etl"));
  EXPECT_THAT(r.log_artifact().file_name(), ::testing::EndsWith(".log"));
  EXPECT_EQ(r.log_artifact().run_id(), "r1");
  EXPECT_EQ(r.session().state(), v1::TRACE_STATE_COMPLETED);

  // Not on the list: refused without running.
  s = Run({"/bin/echo", "x"}, &r);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::PERMISSION_DENIED);
  s = Run({"sh", "-c", "true"}, &r);  // Exact match only.
  EXPECT_EQ(s.error_code(), grpc::StatusCode::PERMISSION_DENIED);

  // Timeout kills the program; the trace is still kept.
  const auto start = std::chrono::steady_clock::now();
  s = Run({"/bin/sleep", "30"}, &r, "general", 1);
  ASSERT_TRUE(s.ok()) << s.error_message();
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(15));
  EXPECT_TRUE(r.timed_out());
  EXPECT_FALSE(r.trace_artifact().id().empty());

  // A trace that cannot start: a warning by default, an error when strict.
  s = Run({"/bin/sh", "-c", "echo ran"}, &r, "broken");
  ASSERT_TRUE(s.ok());
  EXPECT_THAT(r.trace_error(), HasSubstr("schema"));
  EXPECT_THAT(r.output_tail(), HasSubstr("ran"));
  EXPECT_TRUE(r.trace_artifact().id().empty());
  s = Run({"/bin/sh", "-c", "echo ran"}, &r, "broken", 0, /*strict=*/true);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
}

// RunCommandStreamed: what one call delivered.
struct Streamed {
  std::string output;                  // Every output piece, in order.
  std::vector<double> piece_seconds;   // When each piece came (since start).
  double result_seconds = -1;          // When the result came.
  v1::RunCommandResponse result;
  grpc::Status status;
};

// Reads a RunCommandStreamed call; sleeps `stall` after the first piece (a
// slow reader). Bounded by the context's deadline.
Streamed ReadStreamed(v1::TraceAgent::Stub& stub, const v1::RunCommandRequest& req,
                      std::chrono::milliseconds stall = {}) {
  Streamed out;
  auto ctx = Ctx(std::chrono::seconds(90));
  const auto start = std::chrono::steady_clock::now();
  auto since = [&] {
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - start)
        .count();
  };
  auto reader = stub.RunCommandStreamed(ctx.get(), req);
  v1::RunCommandEvent e;
  while (reader->Read(&e)) {
    if (e.has_result()) {
      out.result = e.result();
      out.result_seconds = since();
      continue;
    }
    out.output += e.output();
    out.piece_seconds.push_back(since());
    if (out.piece_seconds.size() == 1 && stall.count() > 0) {
      std::this_thread::sleep_for(stall);
    }
  }
  out.status = reader->Finish();
  return out;
}

std::string FetchAll(v1::TraceAgent::Stub& stub, const std::string& id) {
  auto ctx = Ctx();
  v1::FetchArtifactRequest req;
  req.set_artifact_id(id);
  auto reader = stub.FetchArtifact(ctx.get(), req);
  std::string bytes;
  v1::ArtifactChunk c;
  while (reader->Read(&c)) bytes += c.data();
  EXPECT_TRUE(reader->Finish().ok());
  return bytes;
}

v1::RunCommandRequest CommandRequest(const std::string& name,
                                     std::vector<std::string> argv) {
  v1::RunCommandRequest req;
  req.mutable_trace()->set_name(name);
  req.mutable_trace()->set_profile("general");
  req.mutable_trace()->set_run_id("r1");
  for (auto& a : argv) req.add_argv(std::move(a));
  return req;
}

TEST_F(AgentExecTest, StreamedOutputArrivesWhileTheProgramRuns) {
  Launch("exec:\n  enabled: true\n  allow: [/bin/sh]\n");
  Streamed r = ReadStreamed(
      agent_->stub(),
      CommandRequest("streamed", {"/bin/sh", "-c",
                                  "echo first; sleep 2; echo second >&2; exit 4"}));
  ASSERT_TRUE(r.status.ok()) << r.status.error_message();
  ASSERT_GE(r.result_seconds, 0) << "no result message";
  EXPECT_EQ(r.result.exit_code(), 4);
  EXPECT_EQ(r.output, "first\nsecond\n");
  ASSERT_FALSE(r.piece_seconds.empty());
  // "first" came while the program still slept (2 s before its end).
  EXPECT_LT(r.piece_seconds.front(), r.result_seconds - 1.0)
      << "first piece at " << r.piece_seconds.front() << " s, result at "
      << r.result_seconds << " s";
  // The stream is the log artifact, byte for byte.
  EXPECT_EQ(FetchAll(agent_->stub(), r.result.log_artifact().id()), r.output);
  EXPECT_FALSE(r.result.trace_artifact().id().empty());

  // The same rules as RunCommand: not allowed, not run.
  Streamed refused =
      ReadStreamed(agent_->stub(), CommandRequest("nope", {"/bin/echo", "x"}));
  EXPECT_EQ(refused.status.error_code(), grpc::StatusCode::PERMISSION_DENIED);
  EXPECT_TRUE(refused.output.empty());
}

// A reader that stops reading for a while: the program runs at full speed
// (the agent reads ahead from the log file, at most 1 MiB in memory), and
// every byte still arrives, in order.
TEST_F(AgentExecTest, SlowStreamReaderGetsEveryByteAndNeverHoldsTheProgramUp) {
  Launch("exec:\n  enabled: true\n  allow: [/bin/sh]\n");
  // 7.5 MB of numbered lines, as fast as seq writes them.
  Streamed r = ReadStreamed(
      agent_->stub(),
      CommandRequest("chatty", {"/bin/sh", "-c",
                                "seq -f 'line %09g of output' 1 300000"}),
      std::chrono::milliseconds(5000));
  ASSERT_TRUE(r.status.ok()) << r.status.error_message();
  EXPECT_EQ(r.result.exit_code(), 0);
  const std::string log = FetchAll(agent_->stub(), r.result.log_artifact().id());
  EXPECT_EQ(log.size(), 300000u * 25);  // "line 000000001 of output\n"
  EXPECT_TRUE(r.output == log) << "streamed " << r.output.size()
                               << " bytes, log " << log.size();
  // The program was not held up by the 5 s the reader slept.
  EXPECT_LT(absl::ToDoubleSeconds(FromProtoDuration(r.result.duration())), 4.0);
  EXPECT_GT(r.piece_seconds.size(), 10u);
}

// The caller goes away: the program is killed (as with RunCommand), its
// log and trace kept.
TEST_F(AgentExecTest, CancelledStreamKillsTheProgram) {
  Launch("exec:\n  enabled: true\n  allow: [/bin/sh]\n");
  {
    auto ctx = Ctx(std::chrono::seconds(60));
    auto reader = agent_->stub().RunCommandStreamed(
        ctx.get(), CommandRequest("doomed", {"/bin/sh", "-c",
                                             "echo started; exec sleep 60"}));
    v1::RunCommandEvent e;
    ASSERT_TRUE(reader->Read(&e));
    EXPECT_EQ(e.output(), "started\n");
    ctx->TryCancel();
    while (reader->Read(&e)) {
    }
    EXPECT_EQ(reader->Finish().error_code(), grpc::StatusCode::CANCELLED);
  }
  // The log appears once Run has returned, which only a kill allows before
  // the minute is up.
  std::string log;
  for (int i = 0; i < 200 && log.empty(); ++i) {
    v1::ListArtifactsRequest req;
    v1::ListArtifactsResponse resp;
    ASSERT_TRUE(agent_->stub().ListArtifacts(Ctx().get(), req, &resp).ok());
    for (const v1::Artifact& a : resp.artifacts()) {
      if (a.session_name() == "doomed" && a.backend() == "exec") {
        log = FetchAll(agent_->stub(), a.id());
      }
    }
    if (log.empty()) std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  EXPECT_THAT(log, HasSubstr("started"));
  EXPECT_THAT(log, HasSubstr("cancelled"));
}

// The agent dies mid-stream (kill -9): the reader gets an error at once,
// not a hang.
TEST_F(AgentExecTest, AgentKilledMidStreamEndsTheReader) {
  Launch("exec:\n  enabled: true\n  allow: [/bin/sh]\n");
  auto ctx = Ctx(std::chrono::seconds(60));
  auto reader = agent_->stub().RunCommandStreamed(
      ctx.get(),
      CommandRequest("orphan", {"/bin/sh", "-c", "echo up; exec sleep 60"}));
  v1::RunCommandEvent e;
  ASSERT_TRUE(reader->Read(&e));
  const auto start = std::chrono::steady_clock::now();
  agent_->Crash();
  while (reader->Read(&e)) {
  }
  const grpc::Status s = reader->Finish();
  EXPECT_FALSE(s.ok());
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(20));
}

}  // namespace
}  // namespace labtrace

namespace labtrace {
namespace {

TEST(AgentStartupTest, PortInUseIsACleanError) {
  testing::TempDir dir;
  testing::AgentProcess first({dir.path() / "a", "", {}, {}});
  std::string error;
  ASSERT_TRUE(first.Start(&error)) << error;
  subprocess::Options o;
  o.argv = {testing::AgentBinary(), "--listen", first.address(), "--data-dir",
            (dir.path() / "b").string()};
  o.timeout = std::chrono::seconds(30);
  subprocess::Result r = subprocess::Run(o);
  EXPECT_EQ(r.outcome, subprocess::Outcome::kExited) << r.Describe();
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_THAT(r.output,
              ::testing::HasSubstr("cannot listen on " + first.address()));
}

TEST(AgentStartupTest, NonLoopbackNeedsInsecure) {
  testing::TempDir dir;
  subprocess::Options o;
  o.argv = {testing::AgentBinary(), "--listen", "0.0.0.0:0", "--data-dir",
            (dir.path() / "d").string()};
  o.timeout = std::chrono::seconds(30);
  subprocess::Result r = subprocess::Run(o);
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_THAT(r.output,
              ::testing::HasSubstr("refusing to listen on 0.0.0.0:0"));
  // With --insecure it starts, and says so loudly.
  testing::AgentProcess agent(
      {dir.path() / "a", "", {"--listen", "0.0.0.0:0", "--insecure"}, {}});
  std::string error;
  ASSERT_TRUE(agent.Start(&error)) << error;
  EXPECT_THAT(agent.output(), ::testing::HasSubstr("INSECURE"));
}

TEST(AgentStartupTest, BadFlagsAndHelp) {
  subprocess::Options o;
  o.argv = {testing::AgentBinary(), "--max-sessions", "0"};
  subprocess::Result r = subprocess::Run(o);
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_THAT(r.output, ::testing::HasSubstr("--max-sessions"));
  o.argv = {testing::AgentBinary(), "--help"};
  r = subprocess::Run(o);
  EXPECT_EQ(r.exit_code, 0);
  EXPECT_THAT(r.output, ::testing::HasSubstr("Usage: labtrace-agent"));
}

}  // namespace
}  // namespace labtrace
