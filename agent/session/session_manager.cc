#include "agent/session/session_manager.h"

#include <algorithm>
#include <utility>

#include "absl/strings/str_cat.h"
#include "common/file_util.h"
#include "common/host_info.h"
#include "common/names.h"
#include "common/proto_time.h"
#include "common/status_macros.h"
#include "common/time_util.h"
#include "common/trace_summary.h"
#include "google/protobuf/util/json_util.h"
#include "google/protobuf/util/time_util.h"
#include "labtrace/v1/journal.pb.h"
#include "spdlog/spdlog.h"

namespace labtrace::agent {
namespace {

const char* ModeName(v1::TraceMode mode) {
  return mode == v1::TRACE_MODE_MEMORY ? "memory" : "file";
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
  bool auto_stopped = false;
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
      store_(store) {}

SessionManager::~SessionManager() {
  {
    absl::MutexLock lock(&mu_);
    shutting_down_ = true;
    auto_stop_cv_.SignalAll();
  }
  if (auto_stop_thread_.joinable()) auto_stop_thread_.join();
  std::vector<Worker> workers;
  {
    absl::MutexLock lock(&workers_mu_);
    workers.swap(auto_stop_workers_);
  }
  for (Worker& w : workers) w.thread.join();
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
  ++journal_seq_;
  auto_stop_cv_.SignalAll();  // Deadlines and waiters may have changed.
}

std::string SessionManager::JournalSnapshotLocked(std::uint64_t* seq) {
  v1::Journal journal;
  journal.set_agent_pid(CurrentPid());
  for (const auto& [name, s] : active_) {
    v1::JournalEntry* e = journal.add_entries();
    *e->mutable_session() = ToProtoLocked(*s, -1);
    e->set_recovery_handle(s->recovery_handle);
  }
  std::string json;
  google::protobuf::util::JsonPrintOptions opts;
  opts.add_whitespace = true;
  opts.preserve_proto_field_names = true;
  (void)google::protobuf::util::MessageToJsonString(journal, &json, opts);
  *seq = journal_seq_;
  return json;
}

void SessionManager::WriteJournal(std::uint64_t seq,
                                  const std::string& contents) {
  absl::MutexLock lock(&journal_mu_);
  // Snapshots are taken in order under mu_ but may arrive here out of
  // order; never replace a newer journal with an older one.
  if (seq < journal_written_seq_) return;
  journal_written_seq_ = seq;
  if (absl::Status s = WriteFileAtomically(options_.journal_path, contents);
      !s.ok()) {
    spdlog::error("cannot write journal: {}", s.ToString());
  }
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
  if (s.artifact) p.set_artifact_id(s.artifact->id());
  return p;
}

// ---------------------------------------------------------------------------
// Recovery.

absl::Status SessionManager::Recover() {
  std::error_code ec;
  if (std::filesystem::exists(options_.journal_path, ec)) {
    LABTRACE_ASSIGN_OR_RETURN(std::string text,
                              ReadFile(options_.journal_path));
    v1::Journal journal;
    if (!google::protobuf::util::JsonStringToMessage(text, &journal).ok()) {
      spdlog::error("journal {} is unreadable; starting without recovery",
                    PathToUtf8(options_.journal_path));
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
      s->state = SessionState::kFailed;
      s->end_time = options_.clock();
      std::string cleanup = "nothing to clean up";
      auto b = backends_.find(old.backend());
      if (b != backends_.end() && !e.recovery_handle().empty()) {
        absl::Status st =
            b->second->CleanupOrphan(old.name(), e.recovery_handle());
        cleanup = st.ok() ? "its recording was ended"
                          : absl::StrCat("cleanup failed: ", st.ToString());
      }
      s->failure_reason = absl::StrCat("the agent (pid ", journal.agent_pid(),
                                       ") stopped while this session was ",
                                       StateName(FromProto(old.state())),
                                       "; no file was kept; ", cleanup);
      spdlog::warn("recovered session {}: {}", s->name, s->failure_reason);
      absl::MutexLock lock(&mu_);
      finished_.push_back(std::move(s));
    }
  }
  // Recordings of ours that no journal entry named (journal lost, or the
  // agent died before writing it).
  for (const auto& [name, backend] : backends_) {
    for (const std::string& line : backend->CleanupUnjournaled()) {
      spdlog::warn("recovery ({}): {}", name, line);
    }
  }
  std::uint64_t seq;
  std::string snapshot;
  {
    absl::MutexLock lock(&mu_);
    ++journal_seq_;
    snapshot = JournalSnapshotLocked(&seq);
  }
  WriteJournal(seq, snapshot);
  return absl::OkStatus();
}

// ---------------------------------------------------------------------------
// Start.

absl::Status SessionManager::ValidateStart(const v1::StartTraceRequest& req,
                                           const ProfileSpec** profile,
                                           TraceBackend** backend,
                                           absl::Duration* max_duration) const {
  LABTRACE_RETURN_IF_ERROR(ValidateName("trace name", req.name()));
  LABTRACE_RETURN_IF_ERROR(ValidateOptionalName("run_id", req.run_id()));
  LABTRACE_RETURN_IF_ERROR(ValidateOptionalName("phase", req.phase()));
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
  *profile = nullptr;
  std::string known;
  for (const ProfileSpec& p : catalog_) {
    if (p.name == req.profile()) *profile = &p;
    absl::StrAppend(&known, known.empty() ? "" : ", ", p.name);
  }
  if (*profile == nullptr) {
    return absl::NotFoundError(absl::StrCat("unknown profile ",
                                            QuoteForMessage(req.profile()),
                                            "; this agent has: ", known));
  }
  const v1::TraceMode mode = req.mode() == v1::TRACE_MODE_MEMORY
                                 ? v1::TRACE_MODE_MEMORY
                                 : v1::TRACE_MODE_FILE;
  if ((mode == v1::TRACE_MODE_FILE && !(*profile)->file_mode) ||
      (mode == v1::TRACE_MODE_MEMORY && !(*profile)->memory_mode)) {
    return absl::InvalidArgumentError(
        absl::StrCat("profile \"", (*profile)->name, "\" does not support ",
                     ModeName(mode), " mode"));
  }
  auto b = backends_.find((*profile)->backend);
  if (b == backends_.end()) {
    return absl::FailedPreconditionError(absl::StrCat(
        "profile \"", (*profile)->name, "\" needs the ", (*profile)->backend,
        " backend, which this agent build does not have"));
  }
  if (absl::Status s = b->second->CheckAvailable(nullptr); !s.ok()) {
    return absl::FailedPreconditionError(absl::StrCat(
        "profile \"", (*profile)->name, "\": backend ", (*profile)->backend,
        " is not available here: ", s.message()));
  }
  *backend = b->second.get();
  *max_duration = options_.max_duration;
  if (req.has_max_duration()) {
    absl::Duration d = FromProtoDuration(req.max_duration());
    if (d < absl::ZeroDuration()) {
      return absl::InvalidArgumentError("max_duration is negative");
    }
    if (d > options_.max_duration) {
      return absl::InvalidArgumentError(absl::StrCat(
          "max_duration ", HumanDuration(d), " exceeds this agent's limit of ",
          HumanDuration(options_.max_duration)));
    }
    if (d > absl::ZeroDuration()) *max_duration = d;
  }
  return absl::OkStatus();
}

absl::StatusOr<v1::TraceSession> SessionManager::Start(
    const v1::StartTraceRequest& req) {
  const ProfileSpec* profile = nullptr;
  TraceBackend* backend = nullptr;
  absl::Duration max_duration;
  LABTRACE_RETURN_IF_ERROR(
      ValidateStart(req, &profile, &backend, &max_duration));

  auto session = std::make_shared<Session>();
  session->name = req.name();
  session->profile = profile;
  session->backend = backend;
  session->mode = req.mode() == v1::TRACE_MODE_MEMORY ? v1::TRACE_MODE_MEMORY
                                                      : v1::TRACE_MODE_FILE;
  session->run_id = req.run_id();
  session->phase = req.phase();
  for (const auto& [k, v] : req.labels()) session->labels[k] = v;
  session->max_duration = max_duration;

  std::uint64_t seq;
  std::string snapshot;
  {
    absl::MutexLock lock(&mu_);
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
    ++journal_seq_;
    snapshot = JournalSnapshotLocked(&seq);
  }
  WriteJournal(seq, snapshot);

  // The session is reserved (STARTING): no lock while the backend works.
  absl::StatusOr<std::unique_ptr<BackendSession>> started;
  absl::StatusOr<std::filesystem::path> work_dir =
      store_->CreateWorkDir(req.name());
  if (!work_dir.ok()) {
    started = work_dir.status();
  } else {
    BackendStartRequest breq;
    breq.session_name = req.name();
    breq.profile = *profile;
    breq.mode = session->mode;
    breq.work_dir = *work_dir;
    started = backend->Start(breq);
  }

  absl::StatusOr<v1::TraceSession> result;
  {
    absl::MutexLock lock(&mu_);
    if (!started.ok()) {
      TransitionLocked(*session, SessionState::kFailed,
                       std::string(started.status().message()));
      result = started.status();
    } else {
      session->backend_session = std::move(*started);
      session->recovery_handle = session->backend_session->RecoveryHandle();
      session->work_dir = *work_dir;
      TransitionLocked(*session, SessionState::kRunning);
      result = ToProtoLocked(*session, -1);
    }
    snapshot = JournalSnapshotLocked(&seq);
  }
  WriteJournal(seq, snapshot);
  if (!started.ok() && work_dir.ok()) store_->RemoveWorkDir(*work_dir);
  return result;
}

// ---------------------------------------------------------------------------
// Stop, cancel.

void SessionManager::AwaitNotStartingLocked(const std::string& name) {
  auto starting = [this, &name]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    auto it = active_.find(name);
    return it == active_.end() || it->second->state != SessionState::kStarting;
  };
  while (!starting()) auto_stop_cv_.Wait(&mu_);
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
  return StopInternal(name, /*auto_stop=*/false);
}

absl::StatusOr<v1::StopTraceResponse> SessionManager::StopInternal(
    const std::string& name, bool auto_stop) {
  LABTRACE_RETURN_IF_ERROR(ValidateName("trace name", name));
  std::shared_ptr<Session> session;
  std::uint64_t seq;
  std::string snapshot;
  {
    absl::MutexLock lock(&mu_);
    AwaitNotStartingLocked(name);
    auto it = active_.find(name);
    if (it != active_.end() &&
        (it->second->state == SessionState::kStopping ||
         it->second->state == SessionState::kCancelling)) {
      // Another caller is finishing it: wait and answer from the outcome.
      std::shared_ptr<Session> other = it->second;
      while (!IsFinal(other->state)) auto_stop_cv_.Wait(&mu_);
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
    session->auto_stopped = auto_stop;
    TransitionLocked(*session, SessionState::kStopping);
    snapshot = JournalSnapshotLocked(&seq);
  }
  WriteJournal(seq, snapshot);

  // Only this thread touches the backend session now (state STOPPING).
  absl::StatusOr<std::filesystem::path> file = session->backend_session->Stop();
  absl::StatusOr<v1::Artifact> artifact;
  if (!file.ok()) {
    artifact = file.status();
  } else {
    v1::Artifact meta;
    meta.set_session_name(session->name);
    meta.set_run_id(session->run_id);
    meta.set_phase(session->phase);
    for (const auto& [k, v] : session->labels) (*meta.mutable_labels())[k] = v;
    meta.set_profile(session->profile->name);
    meta.set_backend(std::string(session->backend->name()));
    meta.set_mode(session->mode);
    meta.set_host(options_.hostname);
    *meta.mutable_start_time() = ToProtoTimestamp(session->start_time);
    *meta.mutable_stop_time() = ToProtoTimestamp(options_.clock());
    meta.set_auto_stopped(auto_stop);
    // Whether the file is sound, computed once, here (outside the lock).
    absl::StatusOr<std::optional<v1::TraceSummary>> summary =
        SummarizeTraceFile(*file);
    if (summary.ok() && summary->has_value()) {
      *meta.mutable_summary() = **summary;
      for (const std::string& w : SummaryWarnings(**summary)) {
        spdlog::warn("{}: {}", session->name, w);
      }
    }
    artifact =
        store_->Add(*file, session->backend->file_extension(), std::move(meta));
  }
  store_->RemoveWorkDir(session->work_dir);

  absl::StatusOr<v1::StopTraceResponse> result;
  {
    absl::MutexLock lock(&mu_);
    if (!artifact.ok()) {
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
    snapshot = JournalSnapshotLocked(&seq);
  }
  WriteJournal(seq, snapshot);
  return result;
}

absl::StatusOr<v1::TraceSession> SessionManager::Cancel(
    const std::string& name) {
  LABTRACE_RETURN_IF_ERROR(ValidateName("trace name", name));
  std::shared_ptr<Session> session;
  std::uint64_t seq;
  std::string snapshot;
  {
    absl::MutexLock lock(&mu_);
    AwaitNotStartingLocked(name);
    auto it = active_.find(name);
    if (it != active_.end() && it->second->state == SessionState::kCancelling) {
      std::shared_ptr<Session> other = it->second;
      while (!IsFinal(other->state)) auto_stop_cv_.Wait(&mu_);
      return ToProtoLocked(*other, -1);
    }
    if (it != active_.end() && it->second->state == SessionState::kStopping) {
      return absl::FailedPreconditionError(
          absl::StrCat("trace \"", name,
                       "\" is already STOPPING; its file will be kept "
                       "(delete the artifact afterwards if it is not wanted)"));
    }
    if (it == active_.end()) {
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
    session = it->second;
    TransitionLocked(*session, SessionState::kCancelling);
    snapshot = JournalSnapshotLocked(&seq);
  }
  WriteJournal(seq, snapshot);

  absl::Status cancelled = session->backend_session->Cancel();
  store_->RemoveWorkDir(session->work_dir);

  absl::StatusOr<v1::TraceSession> result;
  {
    absl::MutexLock lock(&mu_);
    if (!cancelled.ok()) {
      TransitionLocked(*session, SessionState::kFailed,
                       absl::StrCat("cancel failed: ", cancelled.message()));
      result = cancelled;
    } else {
      TransitionLocked(*session, SessionState::kCancelled);
      result = ToProtoLocked(*session, -1);
    }
    snapshot = JournalSnapshotLocked(&seq);
  }
  WriteJournal(seq, snapshot);
  return result;
}

v1::StopAllTracesResponse SessionManager::StopAll(bool discard) {
  std::vector<std::string> names;
  {
    absl::MutexLock lock(&mu_);
    for (const auto& [name, s] : active_) names.push_back(name);
  }
  // In parallel: one slow backend stop must not delay the others.
  std::vector<v1::StopAllResult> results(names.size());
  std::vector<std::thread> threads;
  threads.reserve(names.size());
  for (std::size_t i = 0; i < names.size(); ++i) {
    threads.emplace_back([this, discard, &names, &results, i] {
      v1::StopAllResult& r = results[i];
      if (discard) {
        absl::StatusOr<v1::TraceSession> s = Cancel(names[i]);
        if (s.ok()) {
          *r.mutable_session() = *s;
        } else {
          r.set_error(s.status().ToString());
        }
      } else {
        absl::StatusOr<v1::StopTraceResponse> s = Stop(names[i]);
        if (s.ok()) {
          *r.mutable_session() = s->session();
          *r.mutable_artifact() = s->artifact();
        } else {
          r.set_error(s.status().ToString());
        }
      }
      if (!r.has_session()) {
        absl::StatusOr<v1::TraceSession> now = Get(names[i]);
        if (now.ok())
          *r.mutable_session() = *now;
        else
          r.mutable_session()->set_name(names[i]);
      }
    });
  }
  for (std::thread& t : threads) t.join();
  v1::StopAllTracesResponse resp;
  for (v1::StopAllResult& r : results) *resp.add_results() = std::move(r);
  return resp;
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

// ---------------------------------------------------------------------------
// Auto-stop.

void SessionManager::StartAutoStopThread() {
  auto_stop_thread_ = std::thread([this] { AutoStopLoop(); });
}

void SessionManager::AutoStopLoop() {
  absl::MutexLock lock(&mu_);
  while (!shutting_down_) {
    const absl::Time now = options_.clock();
    absl::Time next = absl::InfiniteFuture();
    std::vector<std::string> expired;
    for (const auto& [name, s] : active_) {
      if (s->state != SessionState::kRunning) continue;
      const absl::Time deadline = s->start_time + s->max_duration;
      if (deadline <= now) {
        expired.push_back(name);
      } else {
        next = std::min(next, deadline);
      }
    }
    if (!expired.empty()) {
      mu_.Unlock();
      for (const std::string& name : expired) {
        spdlog::warn("session {} reached its max duration; stopping it", name);
        absl::MutexLock wl(&workers_mu_);
        // Reap workers that are done, so threads do not pile up.
        for (auto w = auto_stop_workers_.begin();
             w != auto_stop_workers_.end();) {
          if (w->done->load()) {
            w->thread.join();
            w = auto_stop_workers_.erase(w);
          } else {
            ++w;
          }
        }
        auto done = std::make_shared<std::atomic<bool>>(false);
        auto_stop_workers_.push_back(
            {std::thread([this, name, done] {
               absl::StatusOr<v1::StopTraceResponse> r =
                   StopInternal(name, /*auto_stop=*/true);
               if (!r.ok()) {
                 spdlog::error("auto-stop of {} failed: {}", name,
                               r.status().ToString());
               }
               done->store(true);
             }),
             done});
      }
      mu_.Lock();
      // The workers move these sessions to STOPPING; wait for that so they
      // are not picked again.
      auto picked = [this, &expired]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
        for (const std::string& n : expired) {
          auto it = active_.find(n);
          if (it != active_.end() &&
              it->second->state == SessionState::kRunning)
            return false;
        }
        return true;
      };
      while (!picked() && !shutting_down_)
        auto_stop_cv_.WaitWithTimeout(&mu_, absl::Milliseconds(50));
      continue;
    }
    // Wake at the next deadline, on any transition, or every second (the
    // injected clock may be a fake that moves without us).
    absl::Duration wait = std::min(next - now, absl::Seconds(1));
    auto_stop_cv_.WaitWithTimeout(&mu_, wait);
  }
}

}  // namespace labtrace::agent
