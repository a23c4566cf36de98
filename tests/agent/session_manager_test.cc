#include "agent/session/session_manager.h"

#include <atomic>
#include <thread>

#include "absl/synchronization/notification.h"
#include "common/file_util.h"
#include "common/proto_time.h"
#include "gmock/gmock.h"
#include "google/protobuf/util/json_util.h"
#include "gtest/gtest.h"
#include "labtrace/v1/journal.pb.h"
#include "tests/testing/test_util.h"

namespace labtrace::agent {
namespace {

using ::testing::HasSubstr;

// A backend whose behaviour the test controls; it writes "trace:<name>".
class FakeBackend final : public TraceBackend {
 public:
  struct Control {
    absl::Status start_error;
    absl::Status stop_error;
    absl::Status cancel_error;
    // When set, Stop blocks until it is notified.
    absl::Notification* stop_gate = nullptr;
    std::atomic<int> starts{0};
    std::atomic<int> stops{0};
    std::atomic<int> cancels{0};
    // Salvage: what it was asked, and what it answers (OK writes a file).
    std::vector<std::string> salvaged;
    absl::Status salvage_error;
    // Stop fails and the recording cannot be ended (cancel fails too).
    bool leak_on_stop_failure = false;
    std::atomic<std::int64_t> bytes{42};
    // Set by the test to make a session's tool "end by itself".
    std::function<void(const std::string&)> end_last;
  };

  explicit FakeBackend(Control* control) : control_(control) {}
  absl::string_view name() const override { return "fake"; }
  absl::string_view file_extension() const override { return ".etl"; }
  absl::Status CheckAvailable(std::string* detail) const override {
    if (detail) *detail = "in-process fake";
    return absl::OkStatus();
  }
  absl::StatusOr<std::unique_ptr<BackendSession>> Start(
      const BackendStartRequest& r) override {
    ++control_->starts;
    if (!control_->start_error.ok()) return control_->start_error;
    return std::unique_ptr<BackendSession>(new Session(control_, r));
  }
  absl::StatusOr<Salvaged> Salvage(const JournaledRecording& r) override {
    control_->salvaged.push_back(r.session_name + "=" + r.handle);
    if (!control_->salvage_error.ok()) return control_->salvage_error;
    std::filesystem::create_directories(r.work_dir);
    auto p = r.work_dir / "salvaged.etl";
    testing::WriteTextFile(p, "salvaged:" + r.session_name);
    return Salvaged{p, "the fake kept what it had"};
  }

 private:
  class Session final : public BackendSession {
   public:
    Session(Control* c, BackendStartRequest r) : c_(c), r_(std::move(r)) {}
    absl::StatusOr<std::filesystem::path> Stop() override {
      ++c_->stops;
      if (c_->stop_gate) c_->stop_gate->WaitForNotification();
      if (!c_->stop_error.ok()) {
        still_recording_ = c_->leak_on_stop_failure;
        return c_->stop_error;
      }
      auto p = r_.work_dir / "out.etl";
      testing::WriteTextFile(p, "trace:" + r_.session_name);
      return p;
    }
    absl::Status Cancel() override {
      ++c_->cancels;
      still_recording_ = !c_->cancel_error.ok() && still_recording_;
      return c_->cancel_error;
    }
    bool StillRecording() const override { return still_recording_; }
    void SetOnEnded(std::function<void(const std::string&)> f) override {
      c_->end_last = std::move(f);
    }
    std::int64_t BytesRecorded() const override { return c_->bytes.load(); }
    std::string RecoveryHandle() const override {
      return "handle-" + r_.session_name;
    }

   private:
    Control* c_;
    BackendStartRequest r_;
    std::atomic<bool> still_recording_{false};
  };
  Control* control_;
};

class SessionManagerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(store_.Load().ok());
    manager_ = Make();
  }

  std::unique_ptr<SessionManager> Make() {
    SessionManagerOptions o;
    o.max_sessions = 3;
    o.max_duration = absl::Hours(1);
    o.hostname = "testhost";
    o.journal_path = dir_.path() / "journal.json";
    o.fence_path = dir_.path() / "fence.json";
    o.watchdog_interval = absl::Milliseconds(50);
    o.min_free_bytes = 1000;
    o.free_bytes = [this]() -> absl::StatusOr<std::uint64_t> {
      return free_.load();
    };
    o.clock = [this] {
      return now_.load() == 0 ? absl::Now()
                              : absl::FromUnixSeconds(now_.load());
    };
    std::map<std::string, std::unique_ptr<TraceBackend>> backends;
    backends["fake"] = std::make_unique<FakeBackend>(&control_);
    std::vector<ProfileSpec> catalog = {
        {"prof", "fake", "test profile", {}, true, true},
        {"fileonly", "fake", "", {}, true, false},
        {"nobackend", "wpr", "", {"X"}, true, true},
    };
    return std::make_unique<SessionManager>(o, catalog, std::move(backends),
                                            &store_);
  }

  static v1::StartTraceRequest Req(const std::string& name,
                                   const std::string& profile = "prof") {
    v1::StartTraceRequest r;
    r.set_name(name);
    r.set_profile(profile);
    r.set_run_id("run7");
    r.set_phase("test");
    (*r.mutable_labels())["suite"] = "ebpf";
    return r;
  }

  v1::Journal ReadJournal() {
    EXPECT_TRUE(manager_ == nullptr ||
                manager_->FlushJournal(absl::Seconds(10)));
    v1::Journal j;
    auto text = ReadFile(dir_.path() / "journal.json");
    EXPECT_TRUE(text.ok());
    EXPECT_TRUE(google::protobuf::util::JsonStringToMessage(*text, &j).ok());
    return j;
  }

  testing::TempDir dir_;
  ArtifactStore store_{dir_.path()};
  FakeBackend::Control control_;
  std::atomic<std::int64_t> now_{0};
  std::atomic<std::uint64_t> free_{1ull << 40};
  std::unique_ptr<SessionManager> manager_;
};

TEST_F(SessionManagerTest, StartStopProducesArtifactWithMetadata) {
  auto s = manager_->Start(Req("unit_tests"));
  ASSERT_TRUE(s.ok()) << s.status();
  EXPECT_EQ(s->state(), v1::TRACE_STATE_RUNNING);
  EXPECT_EQ(s->backend(), "fake");
  EXPECT_EQ(s->mode(), v1::TRACE_MODE_FILE);
  auto got = manager_->Get("unit_tests");
  ASSERT_TRUE(got.ok());
  EXPECT_EQ(got->bytes_recorded(), 42);

  auto r = manager_->Stop("unit_tests");
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->session().state(), v1::TRACE_STATE_COMPLETED);
  const v1::Artifact& a = r->artifact();
  EXPECT_EQ(a.session_name(), "unit_tests");
  EXPECT_EQ(a.run_id(), "run7");
  EXPECT_EQ(a.phase(), "test");
  EXPECT_EQ(a.labels().at("suite"), "ebpf");
  EXPECT_EQ(a.host(), "testhost");
  EXPECT_EQ(a.profile(), "prof");
  EXPECT_EQ(a.sha256(), Sha256Hex("trace:unit_tests"));
  EXPECT_EQ(r->session().artifact_id(), a.id());
  EXPECT_EQ(manager_->active_count(), 0);

  // Stop again: the same artifact, no second backend stop.
  auto again = manager_->Stop("unit_tests");
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(again->artifact().id(), a.id());
  EXPECT_EQ(control_.stops.load(), 1);
  // The name is free for a new session.
  EXPECT_TRUE(manager_->Start(Req("unit_tests")).ok());
}

TEST_F(SessionManagerTest, BadInputIsRejectedPrecisely) {
  EXPECT_EQ(manager_->Start(Req("../x")).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(manager_->Start(Req("")).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(manager_->Start(Req(std::string(65, 'a'))).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(manager_->Start(Req("a b")).status().code(),
            absl::StatusCode::kInvalidArgument);
  auto unknown = manager_->Start(Req("x", "nope"));
  EXPECT_EQ(unknown.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(std::string(unknown.status().message()),
              HasSubstr("prof, fileonly"));
  auto r = Req("x");
  r.set_mode(v1::TRACE_MODE_MEMORY);
  r.set_profile("fileonly");
  EXPECT_EQ(manager_->Start(r).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(manager_->Start(Req("x", "nobackend")).status().code(),
            absl::StatusCode::kFailedPrecondition);
  r = Req("x");
  r.set_run_id("run/1");
  EXPECT_EQ(manager_->Start(r).status().code(),
            absl::StatusCode::kInvalidArgument);
  r = Req("x");
  (*r.mutable_labels())["bad key"] = "v";
  EXPECT_EQ(manager_->Start(r).status().code(),
            absl::StatusCode::kInvalidArgument);
  r = Req("x");
  r.mutable_max_duration()->set_seconds(2 * 3600);
  EXPECT_EQ(manager_->Start(r).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(manager_->Stop("nope").status().code(),
            absl::StatusCode::kNotFound);
  EXPECT_EQ(manager_->Cancel("nope").status().code(),
            absl::StatusCode::kNotFound);
  EXPECT_EQ(manager_->Get("nope").status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(manager_->Stop("../etc").status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(control_.starts.load(), 0);
}

TEST_F(SessionManagerTest, DuplicateNamesAndSessionCap) {
  ASSERT_TRUE(manager_->Start(Req("a")).ok());
  EXPECT_EQ(manager_->Start(Req("a")).status().code(),
            absl::StatusCode::kAlreadyExists);
  ASSERT_TRUE(manager_->Start(Req("b")).ok());
  ASSERT_TRUE(manager_->Start(Req("c")).ok());
  auto d = manager_->Start(Req("d"));
  EXPECT_EQ(d.status().code(), absl::StatusCode::kResourceExhausted);
  EXPECT_THAT(std::string(d.status().message()), HasSubstr("max_sessions 3"));
  // The rejected calls did not disturb the others.
  EXPECT_EQ(manager_->List(false).size(), 3u);
  ASSERT_TRUE(manager_->Cancel("b").ok());
  EXPECT_TRUE(manager_->Start(Req("d")).ok());
}

TEST_F(SessionManagerTest, BackendStartFailureIsReportedAndFreesTheName) {
  control_.start_error = absl::ResourceExhaustedError("too many ETW sessions");
  auto s = manager_->Start(Req("x"));
  EXPECT_EQ(s.status().code(), absl::StatusCode::kResourceExhausted);
  auto got = manager_->Get("x");
  ASSERT_TRUE(got.ok());
  EXPECT_EQ(got->state(), v1::TRACE_STATE_FAILED);
  EXPECT_THAT(got->failure_reason(), HasSubstr("too many ETW sessions"));
  control_.start_error = absl::OkStatus();
  EXPECT_TRUE(manager_->Start(Req("x")).ok());
}

TEST_F(SessionManagerTest, StopFailureMarksFailed) {
  ASSERT_TRUE(manager_->Start(Req("x")).ok());
  control_.stop_error = absl::DeadlineExceededError("wpr -stop hung");
  auto r = manager_->Stop("x");
  EXPECT_EQ(r.status().code(), absl::StatusCode::kDeadlineExceeded);
  EXPECT_EQ(control_.cancels.load(), 0);  // Its recording had ended.
  EXPECT_EQ(manager_->Get("x")->state(), v1::TRACE_STATE_FAILED);
  // Stopping a failed session again explains why there is no file.
  auto again = manager_->Stop("x");
  EXPECT_EQ(again.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(std::string(again.status().message()),
              HasSubstr("wpr -stop hung"));
  EXPECT_EQ(store_.count(), 0);
}

TEST_F(SessionManagerTest, CancelKeepsNoFileAndIsIdempotent) {
  ASSERT_TRUE(manager_->Start(Req("x")).ok());
  auto c = manager_->Cancel("x");
  ASSERT_TRUE(c.ok());
  EXPECT_EQ(c->state(), v1::TRACE_STATE_CANCELLED);
  EXPECT_TRUE(manager_->Cancel("x").ok());
  EXPECT_EQ(control_.cancels.load(), 1);
  EXPECT_EQ(store_.count(), 0);
  EXPECT_EQ(manager_->Stop("x").status().code(),
            absl::StatusCode::kFailedPrecondition);
}

TEST_F(SessionManagerTest, ConcurrentStopsOfOneSessionStopTheBackendOnce) {
  ASSERT_TRUE(manager_->Start(Req("x")).ok());
  absl::Notification gate;
  control_.stop_gate = &gate;
  std::vector<std::thread> threads;
  std::vector<std::string> ids(4);
  for (int i = 0; i < 4; ++i) {
    threads.emplace_back([&, i] {
      auto r = manager_->Stop("x");
      if (r.ok()) ids[i] = r->artifact().id();
    });
  }
  ASSERT_TRUE(testing::WaitFor([&] { return control_.stops.load() == 1; }));
  EXPECT_EQ(manager_->Get("x")->state(), v1::TRACE_STATE_STOPPING);
  // Cancel during STOPPING is refused: the file is already being kept.
  EXPECT_EQ(manager_->Cancel("x").status().code(),
            absl::StatusCode::kFailedPrecondition);
  gate.Notify();
  for (auto& t : threads) t.join();
  EXPECT_EQ(control_.stops.load(), 1);
  for (const auto& id : ids) EXPECT_EQ(id, ids[0]);
  EXPECT_FALSE(ids[0].empty());
}

TEST_F(SessionManagerTest, StopAllStopsEverySessionInParallel) {
  for (const char* n : {"a", "b", "c"})
    ASSERT_TRUE(manager_->Start(Req(n)).ok());
  auto r = manager_->StopAll(/*discard=*/false);
  ASSERT_EQ(r.results_size(), 3);
  for (const auto& res : r.results()) {
    EXPECT_TRUE(res.error().empty()) << res.error();
    EXPECT_EQ(res.session().state(), v1::TRACE_STATE_COMPLETED);
    EXPECT_FALSE(res.artifact().id().empty());
  }
  EXPECT_EQ(store_.count(), 3);
  // Safe to repeat: nothing left to stop.
  EXPECT_EQ(manager_->StopAll(false).results_size(), 0);
  for (const char* n : {"d", "e"}) ASSERT_TRUE(manager_->Start(Req(n)).ok());
  auto d = manager_->StopAll(/*discard=*/true);
  ASSERT_EQ(d.results_size(), 2);
  for (const auto& res : d.results())
    EXPECT_EQ(res.session().state(), v1::TRACE_STATE_CANCELLED);
  EXPECT_EQ(store_.count(), 3);
}

TEST_F(SessionManagerTest, AutoStopAfterMaxDurationKeepsAndMarksTheArtifact) {
  now_ = 1795311725;
  auto r = Req("long");
  r.mutable_max_duration()->set_seconds(60);
  ASSERT_TRUE(manager_->Start(r).ok());
  manager_->StartWatchdog();
  now_ += 30;
  // The watchdog looks every 50 ms: give it several looks.
  EXPECT_FALSE(testing::WaitFor(
      [&] {
        return manager_->Get("long")->state() != v1::TRACE_STATE_RUNNING;
      },
      std::chrono::milliseconds(300)));
  now_ += 31;  // Past the limit.
  ASSERT_TRUE(testing::WaitFor(
      [&] {
        return manager_->Get("long")->state() == v1::TRACE_STATE_COMPLETED;
      },
      std::chrono::seconds(10)));
  auto s = manager_->Get("long");
  EXPECT_TRUE(s->auto_stopped());
  EXPECT_EQ(s->stop_reason(), "max_duration");
  auto a = store_.Get(s->artifact_id());
  ASSERT_TRUE(a.ok());
  EXPECT_TRUE(a->auto_stopped());
  EXPECT_EQ(a->stop_reason(), "max_duration");
}

TEST_F(SessionManagerTest, JournalTracksActiveSessionsAndRecoveryCleansUp) {
  ASSERT_TRUE(manager_->Start(Req("a")).ok());
  ASSERT_TRUE(manager_->Start(Req("b")).ok());
  ASSERT_TRUE(manager_->Stop("a").ok());
  v1::Journal j = ReadJournal();
  ASSERT_EQ(j.entries_size(), 1);
  EXPECT_EQ(j.entries(0).session().name(), "b");
  EXPECT_EQ(j.entries(0).session().state(), v1::TRACE_STATE_RUNNING);
  EXPECT_EQ(j.entries(0).recovery_handle(), "handle-b");

  EXPECT_FALSE(j.entries(0).work_dir().empty());

  // A new manager over the same data dir, as after a crash: the recording
  // is salvaged into an artifact marked salvaged.
  manager_.reset();
  auto restarted = Make();
  ASSERT_TRUE(restarted->Recover().ok());
  EXPECT_THAT(control_.salvaged, ::testing::ElementsAre("b=handle-b"));
  auto b = restarted->Get("b");
  ASSERT_TRUE(b.ok());
  EXPECT_EQ(b->state(), v1::TRACE_STATE_COMPLETED);
  EXPECT_EQ(b->stop_reason(), "salvaged");
  EXPECT_EQ(b->run_id(), "run7");
  auto a = store_.Get(b->artifact_id());
  ASSERT_TRUE(a.ok());
  EXPECT_TRUE(a->salvaged());
  EXPECT_THAT(a->salvage_note(), HasSubstr("stopped while this session was RUNNING"));
  EXPECT_EQ(a->sha256(), Sha256Hex("salvaged:b"));
  EXPECT_TRUE(restarted->FlushJournal(absl::Seconds(10)));
  manager_ = std::move(restarted);
  EXPECT_EQ(ReadJournal().entries_size(), 0);
  EXPECT_TRUE(manager_->Start(Req("b")).ok());
}

TEST_F(SessionManagerTest, RecoveryWithNothingToKeepReportsWhy) {
  ASSERT_TRUE(manager_->Start(Req("gone")).ok());
  ASSERT_TRUE(manager_->FlushJournal(absl::Seconds(10)));
  manager_.reset();
  control_.salvage_error = absl::NotFoundError("the fake left no file");
  auto restarted = Make();
  ASSERT_TRUE(restarted->Recover().ok());
  auto g = restarted->Get("gone");
  ASSERT_TRUE(g.ok());
  EXPECT_EQ(g->state(), v1::TRACE_STATE_FAILED);
  EXPECT_THAT(g->failure_reason(), HasSubstr("no file could be kept"));
  EXPECT_THAT(g->failure_reason(), HasSubstr("the fake left no file"));
}

TEST_F(SessionManagerTest, TraceFilesLeftInWorkDirsAreKept) {
  // A work dir as an agent leaves it when it dies before its journal write.
  const auto work = dir_.path() / "tmp" / "lost_step.7";
  std::filesystem::create_directories(work);
  testing::WriteTextFile(work / "lost_step.etl", "partial etl");
  testing::WriteTextFile(work / "output.log", "step output");
  testing::WriteTextFile(work / "scratch.tmp", "scratch");
  auto restarted = Make();
  ASSERT_TRUE(restarted->Recover().ok());
  std::vector<v1::Artifact> all = store_.List("", "lost_step");
  ASSERT_EQ(all.size(), 2u);
  for (const v1::Artifact& a : all) {
    EXPECT_TRUE(a.salvaged());
    EXPECT_THAT(a.salvage_note(), HasSubstr("no journal entry"));
  }
  EXPECT_FALSE(std::filesystem::exists(work));
}

TEST_F(SessionManagerTest, FailedStopThatLeavesTheRecordingIsRetried) {
  ASSERT_TRUE(manager_->Start(Req("x")).ok());
  control_.stop_error = absl::InternalError("wpr -stop: disk full");
  control_.cancel_error = absl::InternalError("wpr -cancel: still busy");
  control_.leak_on_stop_failure = true;
  EXPECT_FALSE(manager_->Stop("x").ok());
  EXPECT_EQ(manager_->Get("x")->state(), v1::TRACE_STATE_FAILED);
  // Journaled, so a restart would end it too.
  v1::Journal j = ReadJournal();
  ASSERT_EQ(j.entries_size(), 1);
  EXPECT_TRUE(j.entries(0).recording_left());
  // Cancel retries; while it fails it says so.
  EXPECT_FALSE(manager_->Cancel("x").ok());
  control_.cancel_error = absl::OkStatus();
  // StopAll acts on it too.
  auto all = manager_->StopAll(false);
  ASSERT_EQ(all.results_size(), 1);
  EXPECT_TRUE(all.results(0).error().empty()) << all.results(0).error();
  EXPECT_EQ(ReadJournal().entries_size(), 0);
  EXPECT_THAT(manager_->Get("x")->failure_reason(),
              HasSubstr("ended by a later cancel"));
}

TEST_F(SessionManagerTest, LeaseRunsOutUnlessRenewed) {
  now_ = 1795311725;
  auto r = Req("leased");
  r.mutable_lease()->set_seconds(30);
  r.set_lease_holder("ci-job-1");
  ASSERT_TRUE(manager_->Start(r).ok());
  auto other = Req("other");
  other.set_run_id("run8");
  other.mutable_lease()->set_seconds(30);
  ASSERT_TRUE(manager_->Start(other).ok());
  manager_->StartWatchdog();
  now_ += 20;
  v1::KeepAliveRequest k;
  k.set_lease_holder("ci-job-1");
  auto renewed = manager_->KeepAlive(k);
  ASSERT_TRUE(renewed.ok());
  EXPECT_THAT(renewed->renewed(), ::testing::ElementsAre("leased"));
  now_ += 20;  // 40 s after start: "other" ran out, "leased" was renewed.
  ASSERT_TRUE(testing::WaitFor([&] {
    return manager_->Get("other")->state() == v1::TRACE_STATE_COMPLETED;
  }));
  EXPECT_EQ(manager_->Get("other")->stop_reason(), "lease_expired");
  EXPECT_EQ(manager_->Get("leased")->state(), v1::TRACE_STATE_RUNNING);
  EXPECT_FALSE(manager_->KeepAlive(v1::KeepAliveRequest()).ok());
  auto too_long = Req("y");
  too_long.mutable_lease()->set_seconds(48 * 3600);
  EXPECT_EQ(manager_->Start(too_long).status().code(),
            absl::StatusCode::kInvalidArgument);
}

TEST_F(SessionManagerTest, FenceRefusesStartsAndSurvivesARestart) {
  ASSERT_TRUE(manager_->Start(Req("a")).ok());
  auto f = manager_->Fence("oncall", "ETW storm on the lab");
  ASSERT_TRUE(f.ok());
  ASSERT_EQ(f->stopped().results_size(), 1);
  EXPECT_EQ(manager_->Get("a")->stop_reason(), "fence");
  auto refused = manager_->Start(Req("b"));
  EXPECT_EQ(refused.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(std::string(refused.status().message()),
              HasSubstr("fenced by oncall"));
  EXPECT_THAT(std::string(refused.status().message()),
              HasSubstr("ETW storm on the lab"));
  manager_.reset();
  auto restarted = Make();
  ASSERT_TRUE(restarted->Recover().ok());
  EXPECT_TRUE(restarted->fence().fenced());
  EXPECT_FALSE(restarted->Start(Req("b")).ok());
  ASSERT_TRUE(restarted->Unfence("oncall").ok());
  EXPECT_TRUE(restarted->Start(Req("b")).ok());
  manager_ = std::move(restarted);
}

TEST_F(SessionManagerTest, DiskGuardRefusesStartsAndStopsTraces) {
  free_ = 500;  // Below the 1000-byte floor of this test.
  auto refused = manager_->Start(Req("a"));
  EXPECT_EQ(refused.status().code(), absl::StatusCode::kResourceExhausted);
  EXPECT_THAT(std::string(refused.status().message()), HasSubstr("floor"));
  free_ = 1ull << 40;
  ASSERT_TRUE(manager_->Start(Req("a")).ok());
  manager_->StartWatchdog();
  free_ = 10;
  ASSERT_TRUE(testing::WaitFor([&] {
    return manager_->Get("a")->state() == v1::TRACE_STATE_COMPLETED;
  }));
  EXPECT_EQ(manager_->Get("a")->stop_reason(), "low_disk");
}

TEST_F(SessionManagerTest, MaxBytesStopsTheTrace) {
  auto r = Req("big");
  r.set_max_bytes(100);
  ASSERT_TRUE(manager_->Start(r).ok());
  manager_->StartWatchdog();
  control_.bytes = 150;
  ASSERT_TRUE(testing::WaitFor([&] {
    return manager_->Get("big")->state() == v1::TRACE_STATE_COMPLETED;
  }));
  EXPECT_EQ(manager_->Get("big")->stop_reason(), "max_bytes");
}

TEST_F(SessionManagerTest, AToolThatEndsByItselfMovesTheSessionOnAtOnce) {
  ASSERT_TRUE(manager_->Start(Req("x")).ok());
  manager_->StartWatchdog();
  control_.stop_error = absl::InternalError("perf record exited with code 1");
  control_.end_last("perf record ended on its own: No space left on device");
  ASSERT_TRUE(testing::WaitFor([&] {
    return manager_->Get("x")->state() != v1::TRACE_STATE_RUNNING &&
           manager_->Get("x")->state() != v1::TRACE_STATE_STOPPING;
  }));
  // The fake's Salvage keeps what it had: stored, marked, with the words.
  auto s = manager_->Get("x");
  EXPECT_EQ(s->state(), v1::TRACE_STATE_COMPLETED);
  EXPECT_EQ(s->stop_reason(), "backend_ended");
  auto a = store_.Get(s->artifact_id());
  ASSERT_TRUE(a.ok());
  EXPECT_TRUE(a->salvaged());
  EXPECT_THAT(a->salvage_note(), HasSubstr("No space left on device"));
}

TEST_F(SessionManagerTest, ListShowsElapsedAndBytes) {
  now_ = 1795311725;
  ASSERT_TRUE(manager_->Start(Req("a")).ok());
  now_ += 90;
  auto list = manager_->List(false);
  ASSERT_EQ(list.size(), 1u);
  EXPECT_EQ(list[0].elapsed().seconds(), 90);
  EXPECT_EQ(list[0].bytes_recorded(), 42);
  ASSERT_TRUE(manager_->Stop("a").ok());
  EXPECT_EQ(manager_->List(false).size(), 0u);
  EXPECT_EQ(manager_->List(true).size(), 1u);
}


// Synchronised starts: prepared at once (STARTING), started at the instant.
TEST_F(SessionManagerTest, SynchronisedStartBeginsAtTheAgreedInstant) {
  v1::StartTraceRequest r = Req("synced");
  const absl::Time at = absl::Now() + absl::Milliseconds(300);
  *r.mutable_start_at() = ToProtoTimestamp(at);
  const absl::Time asked = absl::Now();
  auto s = manager_->Start(r);
  ASSERT_TRUE(s.ok()) << s.status();
  // Answered at once, before the instant, without starting the tool.
  EXPECT_LT(absl::Now() - asked, absl::Milliseconds(200));
  EXPECT_EQ(s->state(), v1::TRACE_STATE_STARTING);
  EXPECT_EQ(FromProtoTimestamp(s->start_time()), at);
  EXPECT_EQ(control_.starts.load(), 0);
  // The name is taken meanwhile.
  EXPECT_EQ(manager_->Start(Req("synced")).status().code(),
            absl::StatusCode::kAlreadyExists);
  auto running = manager_->AwaitStarted("synced");
  ASSERT_TRUE(running.ok()) << running.status();
  EXPECT_EQ(running->state(), v1::TRACE_STATE_RUNNING);
  EXPECT_GE(FromProtoTimestamp(running->start_time()), at);
  EXPECT_GE(absl::Now(), at);
  EXPECT_EQ(control_.starts.load(), 1);
  EXPECT_TRUE(manager_->Stop("synced").ok());
}

TEST_F(SessionManagerTest, StopAllWithdrawsAStartThatHasNotHappenedYet) {
  v1::StartTraceRequest r = Req("later");
  *r.mutable_start_at() = ToProtoTimestamp(absl::Now() + absl::Seconds(30));
  ASSERT_TRUE(manager_->Start(r).ok());
  ASSERT_TRUE(manager_->Start(Req("now")).ok());
  // The emergency stop is not held up by the pending start (30 s away).
  const absl::Time asked = absl::Now();
  v1::StopAllTracesResponse all = manager_->StopAll(false, "requested");
  EXPECT_LT(absl::Now() - asked, absl::Seconds(5));
  ASSERT_EQ(all.results_size(), 2);
  for (const v1::StopAllResult& res : all.results()) {
    EXPECT_EQ(res.error(), "") << res.session().name();
    if (res.session().name() == "later") {
      EXPECT_EQ(res.session().state(), v1::TRACE_STATE_CANCELLED);
      EXPECT_EQ(res.session().stop_reason(), "withdrawn");
      EXPECT_FALSE(res.has_artifact());
    } else {
      EXPECT_EQ(res.session().state(), v1::TRACE_STATE_COMPLETED);
    }
  }
  EXPECT_EQ(control_.starts.load(), 1);  // Only "now" ever started.
  EXPECT_EQ(manager_->active_count(), 0);
  EXPECT_EQ(manager_->AwaitStarted("later").status().code(),
            absl::StatusCode::kNotFound);
}

TEST_F(SessionManagerTest, CancelWithdrawsAPendingStartAndAwaitSaysSo) {
  v1::StartTraceRequest r = Req("pending");
  *r.mutable_start_at() = ToProtoTimestamp(absl::Now() + absl::Seconds(30));
  ASSERT_TRUE(manager_->Start(r).ok());
  absl::StatusOr<v1::TraceSession> awaited;
  std::thread waiter([&] { awaited = manager_->AwaitStarted("pending"); });
  absl::SleepFor(absl::Milliseconds(50));
  auto c = manager_->Cancel("pending");
  waiter.join();
  EXPECT_EQ(awaited.status().code(), absl::StatusCode::kAborted);
  EXPECT_THAT(awaited.status().message(), HasSubstr("withdrawn"));
  EXPECT_EQ(control_.starts.load(), 0);
  // The name is free again.
  EXPECT_TRUE(manager_->Start(Req("pending")).ok());
}

TEST_F(SessionManagerTest, SynchronisedStartLimitsAndShutdown) {
  v1::StartTraceRequest too_far = Req("too_far");
  *too_far.mutable_start_at() = ToProtoTimestamp(absl::Now() + absl::Seconds(61));
  auto refused = manager_->Start(too_far);
  EXPECT_EQ(refused.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(refused.status().message(), HasSubstr("ahead of this agent"));
  // An instant in the past: started at once, answered RUNNING.
  v1::StartTraceRequest past = Req("past");
  *past.mutable_start_at() = ToProtoTimestamp(absl::Now() - absl::Seconds(5));
  auto s = manager_->Start(past);
  ASSERT_TRUE(s.ok());
  EXPECT_EQ(s->state(), v1::TRACE_STATE_RUNNING);
  // A manager destroyed with a start pending never starts that tool.
  v1::StartTraceRequest pending = Req("pending");
  *pending.mutable_start_at() = ToProtoTimestamp(absl::Now() + absl::Seconds(30));
  ASSERT_TRUE(manager_->Start(pending).ok());
  const absl::Time asked = absl::Now();
  manager_.reset();
  EXPECT_LT(absl::Now() - asked, absl::Seconds(5));
  EXPECT_EQ(control_.starts.load(), 1);
}

}  // namespace
}  // namespace labtrace::agent
