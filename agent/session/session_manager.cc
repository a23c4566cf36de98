#include "agent/session/session_manager.h"

#include <algorithm>
#include <thread>
#include <utility>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "agent/session/start_checks.h"
#include "common/file_util.h"
#include "common/host_info.h"
#include "common/names.h"
#include "common/perf_data.h"
#include "common/proto_time.h"
#include "common/status_macros.h"
#include "common/subprocess.h"
#include "common/time_util.h"
#include "common/trace_summary.h"
#include "google/protobuf/util/json_util.h"
#include "labtrace/v1/journal.pb.h"
#include "spdlog/spdlog.h"

namespace labtrace::agent {
namespace {

// Stop reasons that a person or program asked for; the others are the
// agent's own decision (auto_stopped).
bool Requested(const std::string& reason) {
  return reason == "requested" || reason == "stop_all" || reason == "fence" ||
         reason == "shutdown";
}

bool Incomplete(const v1::TraceSummary& s) {
  if (!s.header_valid()) return true;
  for (const std::string& p : s.problems()) {
    if (p.rfind("truncated", 0) == 0 || p.rfind("not closed", 0) == 0 ||
        p.rfind("empty data section", 0) == 0) {
      return true;
    }
  }
  return false;
}

}  // namespace

struct SessionManager::Session {
  std::string name;
  const ProfileSpec* profile = nullptr;
  TraceBackend* backend = nullptr;
  v1::TraceMode mode = v1::TRACE_MODE_FILE;
  std::string run_id;
  std::string phase;
  std::map<std::string, std::string> labels;
  SessionState state = SessionState::kStarting;
  std::string failure_reason;
  absl::Time start_time;
  absl::Time end_time = absl::InfinitePast();
  absl::Duration max_duration;
  absl::Duration lease = absl::ZeroDuration();
  std::string lease_holder;
  absl::Time lease_expires = absl::InfiniteFuture();
  std::uint64_t max_bytes = 0;
  std::string stop_reason;
  bool auto_stopped = false;
  // The tool's words when its recording ended without being asked.
  std::string ended_by_backend;
  // A synchronised start waiting for its instant, and whether a stop,
  // cancel or stop-all withdrew it meanwhile (it then never starts).
  bool awaiting_start = false;
  bool start_withdrawn = false;
  std::filesystem::path work_dir;
  // Set once RUNNING. Shared so that List() can ask for bytes recorded
  // without the lock while the driving thread stops it.
  std::shared_ptr<BackendSession> backend_session;
  std::string recovery_handle;
  std::optional<v1::Artifact> artifact;
  // For sessions recovered from a journal: the names a dead process used.
  std::string profile_name;
  std::string backend_name;
};

SessionManager::SessionManager(
    SessionManagerOptions options, std::vector<ProfileSpec> catalog,
    std::map<std::string, std::unique_ptr<TraceBackend>> backends,
    ArtifactStore* store)
    : options_(std::move(options)),
      catalog_(std::move(catalog)),
      backends_(std::move(backends)),
      store_(store),
      journal_(options_.journal_path) {}

SessionManager::~SessionManager() {
  // Synchronised starts still waiting are withdrawn; none starts a tool now.
  std::vector<DeferredStart> deferred;
  {
    absl::MutexLock lock(&mu_);
    closing_ = true;
    deferred.swap(deferred_starts_);
  }
  for (DeferredStart& d : deferred) d.thread.join();
  watchdog_.reset();  // Joins its stops.
  // Sessions (and their backend threads) go outside the lock; a tool ending
  // now finds nothing to report to.
  std::vector<std::shared_ptr<Session>> sessions;
  {
    absl::MutexLock lock(&mu_);
    for (auto& [name, s] : active_) sessions.push_back(std::move(s));
    active_.clear();
    leaked_.clear();
    finished_.clear();
  }
  sessions.clear();
}

// ---------------------------------------------------------------------------
// State changes and the journal.

void SessionManager::TransitionLocked(Session& s, SessionState to,
                                      std::string reason) {
  if (!IsValidTransition(s.state, to)) {
    // A broken invariant of this class, not something a client can cause.
    spdlog::critical("invalid session transition {} -> {} for {}",
                     StateName(s.state), StateName(to), s.name);
    std::abort();
  }
  spdlog::info("session {}: {} -> {}{}{}", s.name, StateName(s.state),
               StateName(to), reason.empty() ? "" : ": ", reason);
  s.state = to;
  if (to == SessionState::kFailed) s.failure_reason = std::move(reason);
  if (options_.on_session_event) {
    const std::string backend =
        s.backend != nullptr ? std::string(s.backend->name()) : s.backend_name;
    switch (to) {
      case SessionState::kRunning:
        options_.on_session_event(backend, "started");
        break;
      case SessionState::kCompleted:
        options_.on_session_event(backend, "completed");
        break;
      case SessionState::kFailed:
        options_.on_session_event(backend, "failed");
        break;
      case SessionState::kCancelled:
        options_.on_session_event(backend, "cancelled");
        break;
      case SessionState::kStarting:
      case SessionState::kStopping:
      case SessionState::kCancelling:
        break;  // Intermediate states are not counted.
    }
  }
  if (IsFinal(to)) {
    s.end_time = options_.clock();
    auto it = active_.find(s.name);
    if (it != active_.end() && it->second.get() == &s) {
      finished_.push_back(std::move(it->second));
      active_.erase(it);
      while (finished_.size() > options_.finished_history)
        finished_.pop_front();
    }
  }
  PublishJournalLocked();
}

void SessionManager::PublishJournalLocked() {
  v1::Journal journal;
  journal.set_agent_pid(CurrentPid());
  auto add = [&](const Session& s, bool recording_left)
                 ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
                   v1::JournalEntry* e = journal.add_entries();
                   *e->mutable_session() = ToProtoLocked(s, -1);
                   e->set_recovery_handle(s.recovery_handle);
                   e->set_work_dir(PathToUtf8(s.work_dir));
                   e->set_recording_left(recording_left);
                 };
  for (const auto& [name, s] : active_) add(*s, false);
  for (const auto& [name, s] : leaked_) add(*s, true);
  for (const auto& [pid, c] : commands_) {
    v1::JournalCommand* jc = journal.add_commands();
    jc->set_name(c.name);
    jc->set_pid(pid);
    jc->set_start_id(c.start_id);
    jc->set_program(c.program);
  }
  journal_.Publish(std::move(journal));
}

v1::TraceSession SessionManager::ToProtoLocked(const Session& s,
                                               std::int64_t bytes) const {
  v1::TraceSession p;
  p.set_name(s.name);
  p.set_profile(s.profile != nullptr ? s.profile->name : s.profile_name);
  p.set_backend(s.backend != nullptr ? std::string(s.backend->name())
                                     : s.backend_name);
  p.set_mode(s.mode);
  p.set_run_id(s.run_id);
  p.set_phase(s.phase);
  for (const auto& [k, v] : s.labels) (*p.mutable_labels())[k] = v;
  p.set_state(ToProto(s.state));
  p.set_failure_reason(s.failure_reason);
  *p.mutable_start_time() = ToProtoTimestamp(s.start_time);
  const bool final_state = IsFinal(s.state);
  if (final_state) *p.mutable_end_time() = ToProtoTimestamp(s.end_time);
  const absl::Time until = final_state ? s.end_time : options_.clock();
  *p.mutable_elapsed() =
      ToProtoDuration(std::max(until - s.start_time, absl::ZeroDuration()));
  p.set_bytes_recorded(
      s.artifact ? static_cast<std::int64_t>(s.artifact->size_bytes()) : bytes);
  *p.mutable_max_duration() = ToProtoDuration(s.max_duration);
  p.set_auto_stopped(s.auto_stopped);
  p.set_stop_reason(s.stop_reason);
  if (s.artifact) p.set_artifact_id(s.artifact->id());
  if (s.lease > absl::ZeroDuration()) {
    p.set_lease_holder(s.lease_holder);
    if (!final_state) {
      *p.mutable_lease_expires_at() = ToProtoTimestamp(s.lease_expires);
    }
  }
  p.set_max_bytes(s.max_bytes);
  return p;
}

// ---------------------------------------------------------------------------
// Storing files.

absl::StatusOr<v1::Artifact> SessionManager::StoreFile(
    const Session& s, const std::filesystem::path& file,
    const std::string& stop_reason, bool salvaged,
    const std::string& salvage_note) {
  v1::Artifact meta;
  meta.set_session_name(s.name);
  meta.set_run_id(s.run_id);
  meta.set_phase(s.phase);
  for (const auto& [k, v] : s.labels) (*meta.mutable_labels())[k] = v;
  meta.set_profile(s.profile != nullptr ? s.profile->name : s.profile_name);
  const std::string backend =
      s.backend != nullptr ? std::string(s.backend->name()) : s.backend_name;
  meta.set_backend(backend);
  meta.set_mode(s.mode);
  meta.set_host(options_.hostname);
  *meta.mutable_start_time() = ToProtoTimestamp(s.start_time);
  *meta.mutable_stop_time() = ToProtoTimestamp(options_.clock());
  meta.set_stop_reason(stop_reason);
  meta.set_auto_stopped(!Requested(stop_reason) && stop_reason != "salvaged");
  meta.set_salvaged(salvaged);
  meta.set_salvage_note(salvage_note);
  // Whether the file is sound, computed once, here (outside the lock).
  absl::StatusOr<std::optional<v1::TraceSummary>> summary =
      SummarizeTraceFile(file);
  if (summary.ok() && summary->has_value()) {
    *meta.mutable_summary() = **summary;
    for (const std::string& w : SummaryWarnings(**summary)) {
      spdlog::warn("{}: {}", s.name, w);
    }
    if (Incomplete(**summary) && !salvaged) {
      // Never listed as if it were whole: kept, and marked.
      meta.set_salvaged(true);
      meta.set_salvage_note(absl::StrCat(
          "the file is incomplete (", absl::StrJoin((*summary)->problems(), "; "),
          "); kept as written"));
    }
  }
  std::string extension;
  if (s.backend != nullptr) {
    extension = std::string(s.backend->file_extension());
  } else if (backend == "perf") {
    extension = ".perf.data";
  } else if (backend == "wpr") {
    extension = ".etl";
  } else {
    extension = PathToUtf8(file.extension());
  }
  return store_->Add(file, extension, std::move(meta));
}

// ---------------------------------------------------------------------------
// Recovery.

absl::Status SessionManager::Recover() {
  LoadFence();
  absl::StatusOr<v1::Journal> loaded = journal_.Load();
  v1::Journal journal;
  if (!loaded.ok()) {
    spdlog::error("{}; starting without recovery (the trace files left in "
                  "work dirs are still kept)",
                  loaded.status().ToString());
  } else {
    journal = std::move(*loaded);
  }
  // Step commands that outlived the agent (POSIX): end them.
  for (const v1::JournalCommand& c : journal.commands()) {
    if (!c.start_id().empty() &&
        subprocess::ProcessStartId(c.pid()) == c.start_id()) {
      subprocess::KillProcessTree(c.pid());
      spdlog::warn("recovery: ended step command {} (pid {}, {}) that outlived "
                   "the agent",
                   c.name(), c.pid(), c.program());
    }
  }
  for (const v1::JournalEntry& e : journal.entries()) {
    const v1::TraceSession& old = e.session();
    auto s = std::make_shared<Session>();
    s->name = old.name();
    s->profile_name = old.profile();
    s->backend_name = old.backend();
    s->mode = old.mode();
    s->run_id = old.run_id();
    s->phase = old.phase();
    for (const auto& [k, v] : old.labels()) s->labels[k] = v;
    s->start_time = FromProtoTimestamp(old.start_time());
    s->max_duration = FromProtoDuration(old.max_duration());
    s->work_dir = PathFromUtf8(e.work_dir());
    const SessionState was = FromProto(old.state());
    const std::string context = absl::StrCat(
        "the agent (pid ", journal.agent_pid(), ") stopped while this session ",
        e.recording_left() ? "was FAILED with its recording left running"
                           : absl::StrCat("was ", StateName(was)));
    auto b = backends_.find(old.backend());
    absl::StatusOr<Salvaged> salvaged =
        b == backends_.end()
            ? absl::StatusOr<Salvaged>(absl::FailedPreconditionError(
                  absl::StrCat("this agent has no ", old.backend(), " backend")))
            : b->second->Salvage(JournaledRecording{
                  s->name, e.recovery_handle(), s->work_dir, s->mode,
                  was == SessionState::kStopping});
    if (b != backends_.end()) s->backend = b->second.get();
    if (salvaged.ok() && was == SessionState::kCancelling) {
      // Its caller wanted no file.
      std::error_code ec;
      std::filesystem::remove(salvaged->file, ec);
      s->state = SessionState::kCancelled;
      s->stop_reason = "salvaged";
      spdlog::warn("recovered session {}: {}; cancelled as asked", s->name,
                   context);
    } else if (salvaged.ok()) {
      absl::StatusOr<v1::Artifact> a =
          StoreFile(*s, salvaged->file, "salvaged", true,
                    absl::StrCat(context, "; ", salvaged->note));
      if (a.ok()) {
        s->artifact = *a;
        s->state = SessionState::kCompleted;
        s->stop_reason = "salvaged";
        spdlog::warn("recovered session {}: {}; {} -> {}", s->name, context,
                     salvaged->note, a->id());
      } else {
        s->state = SessionState::kFailed;
        s->failure_reason = absl::StrCat(context, "; its file could not be "
                                                  "stored: ",
                                         a.status().message());
      }
    } else {
      s->state = SessionState::kFailed;
      s->failure_reason = absl::StrCat(context, "; no file could be kept: ",
                                       salvaged.status().message());
      spdlog::warn("recovered session {}: {}", s->name, s->failure_reason);
    }
    s->end_time = options_.clock();
    if (!s->work_dir.empty()) store_->RemoveWorkDir(s->work_dir);
    absl::MutexLock lock(&mu_);
    finished_.push_back(std::move(s));
  }
  // Recordings of ours no journal entry named.
  for (const auto& [name, backend] : backends_) {
    for (const std::string& line : backend->CleanupUnjournaled()) {
      spdlog::warn("recovery ({}): {}", name, line);
    }
  }
  SalvageWorkDirs();
  absl::MutexLock lock(&mu_);
  PublishJournalLocked();
  return absl::OkStatus();
}

void SessionManager::SalvageWorkDirs() {
  for (const ArtifactStore::LeftoverFile& f : store_->LeftoverWorkFiles()) {
    auto s = std::make_shared<Session>();
    s->name = f.session_name;
    s->start_time = f.modified;
    s->backend_name = f.backend;
    std::filesystem::path file = f.path;
    std::string note = "found in a work dir with no journal entry (the agent "
                       "stopped before it could record it)";
    if (f.backend == "perf") {
      std::string repaired, error;
      if (!perf::RepairPerfData(file, &repaired, &error)) {
        spdlog::warn("recovery: {} cannot be used ({}); deleted",
                     PathToUtf8(file), error);
        continue;
      }
      absl::StrAppend(&note, "; ", repaired);
    }
    absl::StatusOr<v1::Artifact> a = StoreFile(*s, file, "salvaged", true, note);
    if (a.ok()) {
      spdlog::warn("recovery: kept {} as {} ({})", PathToUtf8(file), a->id(),
                   note);
    } else {
      spdlog::error("recovery: cannot keep {}: {}", PathToUtf8(file),
                    a.status().ToString());
    }
  }
  store_->CleanWorkDirs();
}

// ---------------------------------------------------------------------------
// The fence.

void SessionManager::LoadFence() {
  if (options_.fence_path.empty()) return;
  std::error_code ec;
  if (!std::filesystem::exists(options_.fence_path, ec)) return;
  absl::StatusOr<std::string> text = ReadFile(options_.fence_path);
  v1::FenceState f;
  if (!text.ok() ||
      !google::protobuf::util::JsonStringToMessage(*text, &f).ok()) {
    // Unreadable: stay fenced. An emergency stop must not be undone by a
    // damaged file.
    f.set_fenced(true);
    f.set_by("unknown");
    f.set_reason(absl::StrCat("the fence file ", PathToUtf8(options_.fence_path),
                              " is unreadable"));
  }
  if (!f.fenced()) return;
  spdlog::warn("fenced since {} by {}: {} (labtrace unfence lifts it)",
               Rfc3339(FromProtoTimestamp(f.at())), f.by(), f.reason());
  absl::MutexLock lock(&mu_);
  fence_ = f;
}

absl::StatusOr<v1::FenceResponse> SessionManager::Fence(
    const std::string& by, const std::string& reason) {
  if (reason.size() > 500) {
    return absl::InvalidArgumentError("the fence reason is over 500 characters");
  }
  v1::FenceState f;
  f.set_fenced(true);
  f.set_by(by);
  *f.mutable_at() = ToProtoTimestamp(options_.clock());
  f.set_reason(reason);
  {
    // In force before the stop-all, so nothing starts in between.
    absl::MutexLock lock(&mu_);
    fence_ = f;
  }
  spdlog::warn("FENCE set by {}: {}", by, reason);
  if (!options_.fence_path.empty()) {
    std::string json;
    (void)google::protobuf::util::MessageToJsonString(f, &json);
    if (absl::Status s = WriteFileAtomically(options_.fence_path, json);
        !s.ok()) {
      spdlog::error("the fence holds now but will not survive a restart: {}",
                    s.ToString());
    }
  }
  v1::FenceResponse resp;
  *resp.mutable_fence() = f;
  *resp.mutable_stopped() = StopAll(/*discard=*/false, "fence");
  return resp;
}

absl::StatusOr<v1::FenceState> SessionManager::Unfence(const std::string& by) {
  if (!options_.fence_path.empty()) {
    std::error_code ec;
    std::filesystem::remove(options_.fence_path, ec);
    if (ec) {
      return absl::InternalError(absl::StrCat(
          "cannot remove the fence file ", PathToUtf8(options_.fence_path),
          ": ", ec.message(), "; still fenced"));
    }
  }
  absl::MutexLock lock(&mu_);
  if (fence_.fenced()) spdlog::warn("FENCE lifted by {}", by);
  fence_ = v1::FenceState();
  return fence_;
}

v1::FenceState SessionManager::fence() const {
  absl::MutexLock lock(&mu_);
  return fence_;
}

absl::Status SessionManager::CheckNotFenced(absl::string_view operation) const {
  absl::MutexLock lock(&mu_);
  if (!fence_.fenced()) return absl::OkStatus();
  return FenceErrorLocked(operation);
}

absl::Status SessionManager::FenceErrorLocked(absl::string_view operation) const {
  return absl::FailedPreconditionError(absl::StrCat(
      "fenced by ", fence_.by(), " at ", Rfc3339(FromProtoTimestamp(fence_.at())),
      ": ", fence_.reason(), "; ", operation,
      " is refused until the fence is lifted (labtrace unfence)"));
}

// ---------------------------------------------------------------------------
// Commands.

void SessionManager::TrackCommand(const std::string& name, std::int64_t pid,
                                  const std::string& program) {
  Command c{name, program, subprocess::ProcessStartId(pid)};
  absl::MutexLock lock(&mu_);
  commands_[pid] = std::move(c);
  PublishJournalLocked();
}

void SessionManager::UntrackCommand(std::int64_t pid) {
  absl::MutexLock lock(&mu_);
  if (commands_.erase(pid) > 0) PublishJournalLocked();
}

// ---------------------------------------------------------------------------
// Start.

absl::StatusOr<v1::TraceSession> SessionManager::Start(
    const v1::StartTraceRequest& req) {
  LABTRACE_ASSIGN_OR_RETURN(
      StartPlan plan,
      CheckStart(req, catalog_, backends_,
                 {options_.max_duration, options_.max_lease,
                  options_.max_session_bytes, options_.clock()}));
  LABTRACE_RETURN_IF_ERROR(CheckNotFenced("StartTrace"));
  if (options_.min_free_bytes > 0) {
    absl::StatusOr<std::uint64_t> free =
        options_.free_bytes ? options_.free_bytes() : FreeBytes(store_->root());
    if (free.ok() && *free < options_.min_free_bytes) {
      return absl::ResourceExhaustedError(absl::StrCat(
          "only ", HumanBytes(*free), " free on the data dir's volume (",
          PathToUtf8(store_->root()), "), below the agent's floor of ",
          HumanBytes(options_.min_free_bytes),
          " (min_free_bytes); free space before tracing"));
    }
  }

  auto session = std::make_shared<Session>();
  session->name = req.name();
  session->profile = plan.profile;
  session->backend = plan.backend;
  session->mode = plan.mode;
  session->run_id = req.run_id();
  session->phase = req.phase();
  for (const auto& [k, v] : req.labels()) session->labels[k] = v;
  session->max_duration = plan.max_duration;
  session->lease = plan.lease;
  session->lease_holder = plan.lease > absl::ZeroDuration() ? plan.lease_holder : "";
  session->max_bytes = plan.max_bytes;

  {
    absl::MutexLock lock(&mu_);
    if (fence_.fenced()) return FenceErrorLocked("StartTrace");
    if (auto it = active_.find(req.name()); it != active_.end()) {
      return absl::AlreadyExistsError(
          absl::StrCat("a trace named \"", req.name(), "\" is already ",
                       StateName(it->second->state),
                       " on this agent; stop it first or pick another name"));
    }
    if (static_cast<int>(active_.size()) >= options_.max_sessions) {
      return absl::ResourceExhaustedError(
          absl::StrCat("this agent already runs ", active_.size(),
                       " traces, its limit (max_sessions ",
                       options_.max_sessions, "); stop one first"));
    }
    session->start_time = options_.clock();
    active_[req.name()] = session;
    PublishJournalLocked();
  }

  // The session is reserved (STARTING): no lock while the backend works.
  absl::StatusOr<std::filesystem::path> work_dir =
      store_->CreateWorkDir(req.name());
  BackendStartRequest breq;
  breq.session_name = req.name();
  breq.profile = *plan.profile;
  breq.mode = session->mode;
  breq.max_bytes = plan.max_bytes;
  if (work_dir.ok()) breq.work_dir = *work_dir;
  if (!work_dir.ok() || plan.start_at <= options_.clock()) {
    return Launch(session, plan.backend, std::move(breq), work_dir, false);
  }
  // A synchronised start: prepared (checked, reserved, work dir made); the
  // tool starts at the agreed instant on a thread of its own, and the caller
  // is answered now (STARTING, start_time = the instant). A stop, cancel or
  // stop-all meanwhile withdraws it: an emergency stop is never held up by a
  // start that has not happened yet.
  v1::TraceSession pending;
  {
    absl::MutexLock lock(&mu_);
    session->awaiting_start = true;
    session->start_time = plan.start_at;
    pending = ToProtoLocked(*session, -1);
    // Join the ones that are done (each holds its stack until joined).
    for (auto it = deferred_starts_.begin(); it != deferred_starts_.end();) {
      if (it->done->load()) {
        it->thread.join();
        it = deferred_starts_.erase(it);
      } else {
        ++it;
      }
    }
    auto done = std::make_shared<std::atomic<bool>>(false);
    std::thread t([this, session, backend = plan.backend,
                   breq = std::move(breq), work_dir, at = plan.start_at,
                   done]() mutable {
      bool withdrawn;
      {
        absl::MutexLock lock(&mu_);
        Session* s = session.get();
        auto wake = [this, s]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
          return s->start_withdrawn || closing_;
        };
        const absl::Duration wait = at - options_.clock();
        if (wait > absl::ZeroDuration()) {
          mu_.AwaitWithTimeout(absl::Condition(&wake), wait);
        }
        if (closing_) session->start_withdrawn = true;
        session->awaiting_start = false;
        withdrawn = session->start_withdrawn;
      }
      absl::StatusOr<v1::TraceSession> r =
          Launch(session, backend, std::move(breq), work_dir, withdrawn);
      if (!r.ok() && !withdrawn) {
        spdlog::warn("session {}: synchronised start failed: {}",
                     session->name, r.status().ToString());
      }
      done->store(true);
    });
    deferred_starts_.push_back({std::move(t), std::move(done)});
  }
  return pending;
}

absl::StatusOr<v1::TraceSession> SessionManager::AwaitStarted(
    const std::string& name) {
  absl::MutexLock lock(&mu_);
  auto it = active_.find(name);
  if (it == active_.end()) {
    return absl::NotFoundError(absl::StrCat("no trace named \"", name, "\""));
  }
  std::shared_ptr<Session> s = it->second;
  auto not_starting = [&s]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    return s->state != SessionState::kStarting;
  };
  mu_.Await(absl::Condition(&not_starting));
  if (s->state == SessionState::kCancelled) {
    return absl::AbortedError(
        absl::StrCat("trace \"", name,
                     "\" was withdrawn by a stop before its synchronised start"));
  }
  if (s->state == SessionState::kFailed) {
    return absl::FailedPreconditionError(s->failure_reason);
  }
  return ToProtoLocked(*s, -1);
}

absl::StatusOr<v1::TraceSession> SessionManager::Launch(
    const std::shared_ptr<Session>& session, TraceBackend* backend,
    BackendStartRequest breq,
    const absl::StatusOr<std::filesystem::path>& work_dir, bool withdrawn) {
  absl::StatusOr<std::unique_ptr<BackendSession>> started;
  if (!work_dir.ok()) {
    started = work_dir.status();
  } else if (withdrawn) {
    started = absl::AbortedError(
        absl::StrCat("withdrawn before its synchronised start at ",
                     absl::FormatTime(session->start_time),
                     " (stopped, or the agent shut down)"));
  } else {
    started = backend->Start(breq);
  }

  absl::StatusOr<v1::TraceSession> result;
  std::shared_ptr<BackendSession> backend_session;
  {
    absl::MutexLock lock(&mu_);
    if (withdrawn) {
      session->stop_reason = "withdrawn";
      TransitionLocked(*session, SessionState::kCancelled,
                       std::string(started.status().message()));
      result = started.status();
    } else if (!started.ok()) {
      TransitionLocked(*session, SessionState::kFailed,
                       std::string(started.status().message()));
      result = started.status();
    } else {
      session->backend_session = std::move(*started);
      backend_session = session->backend_session;
      session->recovery_handle = session->backend_session->RecoveryHandle();
      session->work_dir = *work_dir;
      // When the tool started (a synchronised start is judged by it).
      session->start_time = options_.clock();
      if (session->lease > absl::ZeroDuration()) {
        session->lease_expires = options_.clock() + session->lease;
      }
      TransitionLocked(*session, SessionState::kRunning);
      result = ToProtoLocked(*session, -1);
    }
  }
  if (!started.ok() && work_dir.ok()) store_->RemoveWorkDir(*work_dir);
  if (backend_session != nullptr) {
    // A tool that ends by itself moves its session on at once.
    std::weak_ptr<Session> weak = session;
    backend_session->SetOnEnded([this, weak](const std::string& why) {
      std::shared_ptr<Session> s = weak.lock();
      if (s == nullptr) return;
      absl::MutexLock lock(&mu_);
      if (s->state != SessionState::kRunning) return;
      spdlog::warn("session {}: {}", s->name, why);
      s->ended_by_backend = why;
      if (watchdog_ != nullptr) watchdog_->Wake();
    });
    // A trace the caller was told is RUNNING is on disk with its recovery
    // handle: an agent killed right after this answer still salvages it.
    if (!journal_.Flush(absl::Seconds(5))) {
      spdlog::warn("session {}: the journal was not written within 5 s",
                   session->name);
    }
  }
  return result;
}

// ---------------------------------------------------------------------------
// Stop, cancel.

void SessionManager::AwaitNotStartingLocked(const std::string& name) {
  if (auto it = active_.find(name);
      it != active_.end() && it->second->awaiting_start) {
    it->second->start_withdrawn = true;  // Its Start wakes and gives up.
  }
  auto starting = [this, &name]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    auto it = active_.find(name);
    return it == active_.end() || it->second->state != SessionState::kStarting;
  };
  mu_.Await(absl::Condition(&starting));
}

bool SessionManager::WithdrawnBeforeStart(const std::string& name) const {
  absl::MutexLock lock(&mu_);
  std::shared_ptr<Session> done = FindFinishedLocked(name);
  return done != nullptr && done->start_withdrawn &&
         done->state == SessionState::kCancelled;
}

std::shared_ptr<SessionManager::Session> SessionManager::FindFinishedLocked(
    const std::string& name) const {
  for (auto it = finished_.rbegin(); it != finished_.rend(); ++it) {
    if ((*it)->name == name) return *it;
  }
  return nullptr;
}

absl::StatusOr<v1::StopTraceResponse> SessionManager::Stop(
    const std::string& name) {
  return StopInternal(name, "requested");
}

absl::StatusOr<v1::StopTraceResponse> SessionManager::StopInternal(
    const std::string& name, const std::string& reason) {
  LABTRACE_RETURN_IF_ERROR(ValidateName("trace name", name));
  std::shared_ptr<Session> session;
  {
    absl::MutexLock lock(&mu_);
    AwaitNotStartingLocked(name);
    auto it = active_.find(name);
    if (it != active_.end() &&
        (it->second->state == SessionState::kStopping ||
         it->second->state == SessionState::kCancelling)) {
      // Another caller is finishing it: wait and answer from the outcome.
      std::shared_ptr<Session> other = it->second;
      auto final_state = [&other]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
        return IsFinal(other->state);
      };
      mu_.Await(absl::Condition(&final_state));
      it = active_.end();
    }
    if (it == active_.end()) {
      std::shared_ptr<Session> done = FindFinishedLocked(name);
      if (done == nullptr) {
        return absl::NotFoundError(absl::StrCat(
            "no trace named \"", name,
            "\" on this agent (ListTraces shows the active ones)"));
      }
      if (done->state == SessionState::kCompleted && done->artifact) {
        // Already stopped: the same answer again.
        v1::StopTraceResponse resp;
        *resp.mutable_session() = ToProtoLocked(*done, -1);
        *resp.mutable_artifact() = *done->artifact;
        return resp;
      }
      return absl::FailedPreconditionError(
          absl::StrCat("trace \"", name, "\" is ", StateName(done->state),
                       done->failure_reason.empty() ? "" : ": ",
                       done->failure_reason, "; there is no file to return"));
    }
    session = it->second;
    session->stop_reason =
        session->ended_by_backend.empty() ? reason : "backend_ended";
    session->auto_stopped = !Requested(session->stop_reason);
    TransitionLocked(*session, SessionState::kStopping);
  }

  // Only this thread touches the backend session now (state STOPPING).
  absl::StatusOr<std::filesystem::path> file = session->backend_session->Stop();
  absl::StatusOr<v1::Artifact> artifact;
  if (file.ok()) {
    const bool by_itself = !session->ended_by_backend.empty();
    artifact = StoreFile(*session, *file, session->stop_reason, by_itself,
                         by_itself ? session->ended_by_backend : "");
  } else if (!session->ended_by_backend.empty()) {
    // The tool died: keep what it wrote, if anything can be kept.
    absl::StatusOr<Salvaged> salvaged = session->backend->Salvage(
        JournaledRecording{session->name, session->recovery_handle,
                           session->work_dir, session->mode, false});
    artifact = salvaged.ok()
                   ? StoreFile(*session, salvaged->file, "backend_ended", true,
                               absl::StrCat(session->ended_by_backend, "; ",
                                            salvaged->note))
                   : absl::StatusOr<v1::Artifact>(absl::Status(
                         file.status().code(),
                         absl::StrCat(session->ended_by_backend, "; ",
                                      file.status().message())));
  } else {
    artifact = file.status();
  }
  const bool still_recording = session->backend_session->StillRecording();
  // A recording that may still run keeps writing into its work dir.
  if (!still_recording) store_->RemoveWorkDir(session->work_dir);

  absl::StatusOr<v1::StopTraceResponse> result;
  absl::MutexLock lock(&mu_);
  if (!artifact.ok()) {
    if (still_recording) leaked_[session->name] = session;
    TransitionLocked(*session, SessionState::kFailed,
                     std::string(artifact.status().message()));
    result = artifact.status();
  } else {
    session->artifact = *artifact;
    TransitionLocked(*session, SessionState::kCompleted);
    v1::StopTraceResponse resp;
    *resp.mutable_session() = ToProtoLocked(*session, -1);
    *resp.mutable_artifact() = *artifact;
    result = std::move(resp);
  }
  return result;
}

absl::StatusOr<v1::TraceSession> SessionManager::Cancel(
    const std::string& name) {
  LABTRACE_RETURN_IF_ERROR(ValidateName("trace name", name));
  std::shared_ptr<Session> session;
  std::shared_ptr<Session> leaked;
  {
    absl::MutexLock lock(&mu_);
    AwaitNotStartingLocked(name);
    auto it = active_.find(name);
    if (it != active_.end() && it->second->state == SessionState::kCancelling) {
      std::shared_ptr<Session> other = it->second;
      auto final_state = [&other]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
        return IsFinal(other->state);
      };
      mu_.Await(absl::Condition(&final_state));
      return ToProtoLocked(*other, -1);
    }
    if (it != active_.end() && it->second->state == SessionState::kStopping) {
      return absl::FailedPreconditionError(
          absl::StrCat("trace \"", name,
                       "\" is already STOPPING; its file will be kept "
                       "(delete the artifact afterwards if it is not wanted)"));
    }
    if (it == active_.end()) {
      if (auto l = leaked_.find(name); l != leaked_.end()) {
        leaked = l->second;  // FAILED, recording left: end it below.
      } else {
        std::shared_ptr<Session> done = FindFinishedLocked(name);
        if (done == nullptr) {
          return absl::NotFoundError(absl::StrCat(
              "no trace named \"", name,
              "\" on this agent (ListTraces shows the active ones)"));
        }
        if (done->state == SessionState::kCancelled)
          return ToProtoLocked(*done, -1);
        return absl::FailedPreconditionError(absl::StrCat(
            "trace \"", name, "\" is already ", StateName(done->state),
            done->artifact
                ? absl::StrCat("; delete artifact ", done->artifact->id(),
                               " if it is not wanted")
                : std::string()));
      }
    } else {
      session = it->second;
      TransitionLocked(*session, SessionState::kCancelling);
    }
  }

  if (leaked != nullptr) {
    absl::Status ended = leaked->backend_session->Cancel();
    absl::MutexLock lock(&mu_);
    if (!ended.ok()) {
      return absl::Status(ended.code(),
                          absl::StrCat("the recording of failed trace \"", name,
                                       "\" still could not be ended: ",
                                       ended.message()));
    }
    leaked_.erase(name);
    absl::StrAppend(&leaked->failure_reason,
                    "; its recording was ended by a later cancel");
    PublishJournalLocked();
    spdlog::info("session {}: the recording a failed stop left was ended",
                 name);
    return ToProtoLocked(*leaked, -1);
  }

  absl::Status cancelled = session->backend_session->Cancel();
  const bool still_recording = session->backend_session->StillRecording();
  if (!still_recording) store_->RemoveWorkDir(session->work_dir);

  absl::MutexLock lock(&mu_);
  if (!cancelled.ok()) {
    if (still_recording) leaked_[session->name] = session;
    TransitionLocked(*session, SessionState::kFailed,
                     absl::StrCat("cancel failed: ", cancelled.message()));
    return cancelled;
  }
  TransitionLocked(*session, SessionState::kCancelled);
  return ToProtoLocked(*session, -1);
}

v1::StopAllTracesResponse SessionManager::StopAll(bool discard,
                                                  const std::string& reason) {
  std::vector<std::string> names;
  std::vector<std::string> leaked;
  {
    absl::MutexLock lock(&mu_);
    for (const auto& [name, s] : active_) names.push_back(name);
    for (const auto& [name, s] : leaked_) leaked.push_back(name);
  }
  // In parallel: one slow backend stop must not delay the others.
  std::vector<v1::StopAllResult> results(names.size() + leaked.size());
  std::vector<std::thread> threads;
  threads.reserve(results.size());
  for (std::size_t i = 0; i < results.size(); ++i) {
    threads.emplace_back([this, discard, &reason, &names, &leaked, &results, i] {
      v1::StopAllResult& r = results[i];
      const bool is_leaked = i >= names.size();
      const std::string& name = is_leaked ? leaked[i - names.size()] : names[i];
      if (discard || is_leaked) {
        absl::StatusOr<v1::TraceSession> s = Cancel(name);
        if (s.ok()) {
          *r.mutable_session() = *s;
        } else {
          r.set_error(s.status().ToString());
        }
      } else {
        absl::StatusOr<v1::StopTraceResponse> s = StopInternal(name, reason);
        if (s.ok()) {
          *r.mutable_session() = s->session();
          *r.mutable_artifact() = s->artifact();
        } else if (WithdrawnBeforeStart(name)) {
          // It never started: nothing to stop, nothing recorded; its
          // session (CANCELLED) is the answer, not an error.
        } else {
          r.set_error(s.status().ToString());
        }
      }
      if (!r.has_session()) {
        absl::StatusOr<v1::TraceSession> now = Get(name);
        if (now.ok())
          *r.mutable_session() = *now;
        else
          r.mutable_session()->set_name(name);
      }
    });
  }
  for (std::thread& t : threads) t.join();
  v1::StopAllTracesResponse resp;
  for (v1::StopAllResult& r : results) *resp.add_results() = std::move(r);
  return resp;
}

// ---------------------------------------------------------------------------
// Leases.

absl::StatusOr<v1::KeepAliveResponse> SessionManager::KeepAlive(
    const v1::KeepAliveRequest& req) {
  LABTRACE_RETURN_IF_ERROR(
      ValidateOptionalName("lease_holder", req.lease_holder()));
  LABTRACE_RETURN_IF_ERROR(ValidateOptionalName("run_id", req.run_id()));
  if (req.lease_holder().empty() && req.run_id().empty()) {
    return absl::InvalidArgumentError(
        "KeepAlive needs a lease_holder or a run_id");
  }
  v1::KeepAliveResponse resp;
  absl::MutexLock lock(&mu_);
  const absl::Time now = options_.clock();
  absl::Time earliest = absl::InfiniteFuture();
  for (auto& [name, s] : active_) {
    if (s->lease <= absl::ZeroDuration() || IsFinal(s->state)) continue;
    const bool match =
        (!req.lease_holder().empty() && s->lease_holder == req.lease_holder()) ||
        (!req.run_id().empty() && s->run_id == req.run_id());
    if (!match) continue;
    s->lease_expires = now + s->lease;
    earliest = std::min(earliest, s->lease_expires);
    resp.add_renewed(name);
  }
  if (earliest != absl::InfiniteFuture()) {
    *resp.mutable_expires_at() = ToProtoTimestamp(earliest);
  }
  return resp;
}

// ---------------------------------------------------------------------------
// The watchdog.

void SessionManager::StartWatchdog() {
  watchdog_ = std::make_unique<StopScheduler>(
      [this] { return FindDue(); },
      [this](const StopScheduler::Due& due) {
        spdlog::warn("session {}: stopping it ({}); its file is kept", due.name,
                     due.reason);
        absl::StatusOr<v1::StopTraceResponse> r = StopInternal(due.name, due.reason);
        if (!r.ok()) {
          spdlog::error("{} stop of {} failed: {}", due.reason, due.name,
                        r.status().ToString());
        }
      },
      options_.watchdog_interval);
  watchdog_->Start();
}

std::vector<StopScheduler::Due> SessionManager::FindDue() {
  // Free space and bytes recorded are read without the lock.
  std::optional<std::uint64_t> free;
  if (options_.min_free_bytes > 0) {
    absl::StatusOr<std::uint64_t> f =
        options_.free_bytes ? options_.free_bytes() : FreeBytes(store_->root());
    if (f.ok()) free = *f;
  }
  std::vector<std::pair<std::string, std::shared_ptr<BackendSession>>> sized;
  {
    absl::MutexLock lock(&mu_);
    for (const auto& [name, s] : active_) {
      if (s->state == SessionState::kRunning && s->max_bytes > 0) {
        sized.emplace_back(name, s->backend_session);
      }
    }
  }
  std::map<std::string, std::int64_t> bytes;
  for (const auto& [name, b] : sized) bytes[name] = b->BytesRecorded();

  std::vector<StopScheduler::Due> due;
  absl::MutexLock lock(&mu_);
  const absl::Time now = options_.clock();
  const bool low_disk = free.has_value() && *free < options_.min_free_bytes;
  if (low_disk && !disk_low_logged_ && !active_.empty()) {
    spdlog::error("only {} free on the data dir's volume, below the floor of "
                  "{}: stopping every trace (files kept)",
                  HumanBytes(*free), HumanBytes(options_.min_free_bytes));
  }
  disk_low_logged_ = low_disk;
  for (const auto& [name, s] : active_) {
    if (s->state != SessionState::kRunning) continue;
    std::string reason;
    if (!s->ended_by_backend.empty()) {
      reason = "backend_ended";
    } else if (low_disk) {
      reason = "low_disk";
    } else if (now >= s->start_time + s->max_duration) {
      reason = "max_duration";
    } else if (s->lease > absl::ZeroDuration() && now >= s->lease_expires) {
      reason = "lease_expired";
    } else if (auto b = bytes.find(name);
               b != bytes.end() && b->second >= 0 &&
               static_cast<std::uint64_t>(b->second) >= s->max_bytes) {
      reason = "max_bytes";
    }
    if (!reason.empty()) due.push_back({name, reason});
  }
  return due;
}

// ---------------------------------------------------------------------------
// Queries.

absl::StatusOr<v1::TraceSession> SessionManager::Get(
    const std::string& name) const {
  LABTRACE_RETURN_IF_ERROR(ValidateName("trace name", name));
  std::shared_ptr<BackendSession> backend_session;
  {
    absl::MutexLock lock(&mu_);
    auto it = active_.find(name);
    if (it == active_.end()) {
      std::shared_ptr<Session> done = FindFinishedLocked(name);
      if (done == nullptr) {
        return absl::NotFoundError(
            absl::StrCat("no trace named \"", name, "\" on this agent"));
      }
      return ToProtoLocked(*done, -1);
    }
    backend_session = it->second->backend_session;
  }
  // Bytes recorded may stat files: outside the lock.
  const std::int64_t bytes =
      backend_session ? backend_session->BytesRecorded() : -1;
  absl::MutexLock lock(&mu_);
  auto it = active_.find(name);
  if (it != active_.end()) return ToProtoLocked(*it->second, bytes);
  std::shared_ptr<Session> done = FindFinishedLocked(name);
  if (done == nullptr)
    return absl::NotFoundError(absl::StrCat("no trace named \"", name, "\""));
  return ToProtoLocked(*done, -1);
}

std::vector<v1::TraceSession> SessionManager::List(
    bool include_finished) const {
  std::vector<
      std::pair<std::shared_ptr<Session>, std::shared_ptr<BackendSession>>>
      sessions;
  {
    absl::MutexLock lock(&mu_);
    if (include_finished) {
      for (const auto& s : finished_) sessions.emplace_back(s, nullptr);
    }
    for (const auto& [name, s] : active_)
      sessions.emplace_back(s, s->backend_session);
  }
  std::vector<std::int64_t> bytes;
  for (const auto& [s, b] : sessions)
    bytes.push_back(b ? b->BytesRecorded() : -1);
  std::vector<v1::TraceSession> out;
  {
    absl::MutexLock lock(&mu_);
    for (std::size_t i = 0; i < sessions.size(); ++i) {
      out.push_back(ToProtoLocked(*sessions[i].first, bytes[i]));
    }
  }
  std::stable_sort(out.begin(), out.end(),
                   [](const v1::TraceSession& a, const v1::TraceSession& b) {
                     if (a.start_time().seconds() != b.start_time().seconds()) {
                       return a.start_time().seconds() <
                              b.start_time().seconds();
                     }
                     return a.start_time().nanos() < b.start_time().nanos();
                   });
  return out;
}

int SessionManager::active_count() const {
  absl::MutexLock lock(&mu_);
  return static_cast<int>(active_.size());
}

std::vector<v1::ProfileInfo> SessionManager::Profiles() const {
  std::vector<v1::ProfileInfo> out;
  for (const ProfileSpec& p : catalog_) {
    v1::ProfileInfo info;
    info.set_name(p.name);
    info.set_backend(p.backend);
    info.set_description(p.description);
    if (p.file_mode) info.add_modes(v1::TRACE_MODE_FILE);
    if (p.memory_mode) info.add_modes(v1::TRACE_MODE_MEMORY);
    out.push_back(std::move(info));
  }
  return out;
}

std::vector<v1::BackendInfo> SessionManager::Backends() const {
  std::vector<v1::BackendInfo> out;
  for (const auto& [name, backend] : backends_) {
    v1::BackendInfo info;
    info.set_name(name);
    std::string detail;
    absl::Status s = backend->CheckAvailable(&detail);
    info.set_available(s.ok());
    info.set_detail(s.ok() ? detail : std::string(s.message()));
    out.push_back(std::move(info));
  }
  return out;
}

}  // namespace labtrace::agent
