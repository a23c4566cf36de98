#include "agent/service/trace_agent_service.h"

#include <deque>
#include <memory>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "agent/service/status_convert.h"
#include "agent/store/uploader.h"
#include "common/file_util.h"
#include "common/host_info.h"
#include "common/names.h"
#include "common/proto_time.h"
#include "common/send_file.h"
#include "common/zstd_codec.h"
#include "spdlog/spdlog.h"

namespace labtrace::agent {
namespace {

// 2 MiB keeps every message under gRPC's default 4 MiB receive limit, so
// stock clients (grpcurl) can ask for the largest chunk too. Below 4 KiB a
// stream costs the agent far more per byte than it is worth.
constexpr std::uint32_t kMaxChunkBytes = 2 << 20;
constexpr std::uint32_t kMinChunkBytes = 4096;
// RunCommandStreamed: output read ahead of the client at most, and the
// largest output message.
constexpr std::size_t kStreamQueueBytes = 1 << 20;
constexpr std::size_t kOutputPieceBytes = 64 << 10;

template <typename T>
grpc::Status Assign(absl::StatusOr<T> result, T* out) {
  if (!result.ok()) return ToGrpcStatus(result.status());
  *out = std::move(*result);
  return grpc::Status::OK;
}

// The verified client certificate's subject CN under mutual TLS, else "".
// The CN, as the REST gateway and the README use (not the first SAN).
std::string CertIdentity(const grpc::CallbackServerContext* ctx) {
  std::shared_ptr<const grpc::AuthContext> auth = ctx->auth_context();
  if (auth == nullptr || !auth->IsPeerAuthenticated()) return "";
  std::vector<grpc::string_ref> cn = auth->FindPropertyValues("x509_common_name");
  if (cn.empty()) return "";
  return std::string(cn[0].data(), cn[0].size());
}

std::string Authorization(const grpc::CallbackServerContext* ctx) {
  const auto& md = ctx->client_metadata();
  auto it = md.find("authorization");
  if (it == md.end()) return "";
  return std::string(it->second.data(), it->second.size());
}

}  // namespace

// ---------------------------------------------------------------------------
// FetchArtifact: one reactor per stream.
//
// Two chunk buffers: while gRPC writes one, a downloads-pool thread reads
// (and, if asked, compresses) the next, so the disk, the compressor and the
// network overlap. The reactor's state is guarded by mu_; gRPC's calls
// (StartWrite, Finish) are made outside it, since gRPC may run a reaction
// on the calling thread.

class TraceAgentService::FetchReactor final
    : public grpc::ServerWriteReactor<v1::ArtifactChunk> {
 public:
  // Takes a download slot if `counted` (released in OnDone).
  FetchReactor(TraceAgentService* svc, grpc::CallbackServerContext* ctx,
               bool counted)
      : svc_(svc), ctx_(ctx), counted_(counted) {
    absl::MutexLock lock(&svc_->streams_mu_);
    svc_->streams_.insert(this);
  }

  // Ends the call at once (before any data).
  void Refuse(const grpc::Status& status) {
    {
      absl::MutexLock lock(&mu_);
      status_ = status;
      finished_ = true;
    }
    Finish(status);
  }

  void Begin(Caller caller, v1::Artifact artifact, std::filesystem::path path,
             std::uint64_t offset, std::uint32_t chunk, bool zstd) {
    caller_ = std::move(caller);
    artifact_ = std::move(artifact);
    start_offset_ = offset;
    chunk_ = chunk;
    zstd_ = zstd;
    std::string error;
    // An open file keeps the bytes readable even if the artifact is
    // deleted mid-stream (POSIX; Windows opens with FILE_SHARE_DELETE).
    if (!in_.Open(path, &error)) {
      Refuse(grpc::Status(grpc::StatusCode::INTERNAL,
                          absl::StrCat("cannot open ", artifact_.file_name(),
                                       ": ", error)));
      return;
    }
    {
      absl::MutexLock lock(&mu_);
      next_offset_ = offset;
      if (offset >= artifact_.size_bytes()) {
        // Nothing (left) to send: one message with the size and digest.
        slots_[0].msg.Clear();
        slots_[0].msg.set_offset(offset);
        slots_[0].msg.set_total_size(artifact_.size_bytes());
        slots_[0].msg.set_sha256(artifact_.sha256());
        slots_[0].raw = 0;
        ready_ = 0;
        StartReadyLocked();
      } else {
        SchedulePrepareLocked();
      }
    }
    Act();
  }

  // Watchdog: a write the client has not taken for `limit`.
  void CancelIfStalled(std::int64_t now_ns, absl::Duration limit) {
    const std::int64_t since = write_started_ns_.load();
    if (since != 0 && now_ns - since > absl::ToInt64Nanoseconds(limit)) {
      if (!stall_cancelled_.exchange(true)) {
        spdlog::warn("FetchArtifact {} to {}: the client read nothing for {}; "
                     "cancelling the stream",
                     artifact_.id(), ctx_->peer(), absl::FormatDuration(limit));
        ctx_->TryCancel();
      }
    }
  }

  void OnWriteDone(bool ok) override {
    write_started_ns_.store(0);
    {
      absl::MutexLock lock(&mu_);
      writing_ = -1;
      if (!ok) {
        FailLocked(grpc::Status(grpc::StatusCode::CANCELLED,
                                stall_cancelled_ ? "the client stopped reading"
                                                 : "the client went away"));
      } else {
        sent_ += last_raw_;
        if (start_offset_ + sent_ >= artifact_.size_bytes() && ready_ < 0 &&
            prepare_slot_ < 0) {
          FailLocked(grpc::Status::OK);  // All sent.
        } else {
          StartReadyLocked();
          SchedulePrepareLocked();
        }
      }
    }
    Act();
  }

  void OnDone() override {
    if (counted_) --svc_->pools_->active_downloads;
    // No prepare can still run: Finish is only called once none does.
    if (!caller_.identity.empty()) {
      svc_->audit_->Record(
          caller_, ctx_->peer(), "FetchArtifact",
          absl::StrCat(artifact_.id(), " offset=", start_offset_,
                       " bytes=", sent_, zstd_ ? " zstd" : ""),
          absl::Status(static_cast<absl::StatusCode>(status_.error_code()),
                       status_.error_message()));
    }
    {
      absl::MutexLock lock(&svc_->streams_mu_);
      svc_->streams_.erase(this);
    }
    delete this;
  }

 private:
  struct Slot {
    v1::ArtifactChunk msg;
    std::uint64_t raw = 0;  // Original bytes in this chunk.
    std::string buffer;     // The raw bytes, when they are compressed.
  };

  // Starts preparing the next chunk into the free slot, if there is more to
  // send, no prepare runs, and a slot is free.
  void SchedulePrepareLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    if (failed_ || prepare_slot_ >= 0 || ready_ >= 0 ||
        next_offset_ >= artifact_.size_bytes()) {
      return;
    }
    const int slot = writing_ == 0 ? 1 : 0;
    prepare_slot_ = slot;
    const std::uint64_t offset = next_offset_;
    const std::size_t want = static_cast<std::size_t>(
        std::min<std::uint64_t>(chunk_, artifact_.size_bytes() - offset));
    next_offset_ += want;
    const bool first = offset == start_offset_;
    schedule_ = [this, slot, offset, want, first] {
      Prepare(slot, offset, want, first);
    };
  }

  // On a downloads thread: read (and compress) one chunk into its slot.
  void Prepare(int slot, std::uint64_t offset, std::size_t want, bool first) {
    Slot& s = slots_[slot];
    s.msg.Clear();
    grpc::Status error;
    std::string* raw = zstd_ ? &s.buffer : s.msg.mutable_data();
    raw->resize(want);
    std::size_t got = 0;
    while (got < want) {
      const std::int64_t n = in_.ReadAt(offset + got, raw->data() + got, want - got);
      if (n <= 0) break;
      got += static_cast<std::size_t>(n);
    }
    if (got < want) {
      error = grpc::Status(
          grpc::StatusCode::DATA_LOSS,
          absl::StrCat("artifact ", artifact_.id(), " is shorter than its ",
                       artifact_.size_bytes(), " bytes (read failed at offset ",
                       offset + got, ")"));
    } else if (zstd_) {
      if (zstd::CompressChunk(raw->data(), want, svc_->options_.zstd_level,
                              s.msg.mutable_data())) {
        s.msg.set_compression(v1::COMPRESSION_ZSTD);
        s.msg.set_raw_size(static_cast<std::uint32_t>(want));
      } else {
        s.msg.set_data(*raw);  // Would not get smaller.
      }
    }
    s.msg.set_offset(offset);
    if (first) {
      s.msg.set_total_size(artifact_.size_bytes());
      s.msg.set_sha256(artifact_.sha256());
    }
    s.raw = want;
    {
      absl::MutexLock lock(&mu_);
      prepare_slot_ = -1;
      if (!error.ok()) {
        FailLocked(error);
      } else if (ctx_->IsCancelled()) {
        FailLocked(grpc::Status(grpc::StatusCode::CANCELLED,
                                "the call was cancelled"));
      } else {
        ready_ = slot;
        StartReadyLocked();
        SchedulePrepareLocked();
      }
    }
    Act();
  }

  // If a chunk is ready and nothing is being written, it is written next.
  void StartReadyLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    if (failed_ || writing_ >= 0 || ready_ < 0) return;
    writing_ = ready_;
    ready_ = -1;
    last_raw_ = slots_[writing_].raw;
    write_ = &slots_[writing_].msg;
  }

  // Records the end of the stream; Finish happens (in Act) once neither a
  // write nor a prepare is in flight.
  void FailLocked(const grpc::Status& status) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    if (failed_) return;
    failed_ = true;
    status_ = status;
    ready_ = -1;
  }

  // gRPC calls decided under the lock, made outside it.
  void Act() {
    const v1::ArtifactChunk* write = nullptr;
    std::function<void()> schedule;
    bool finish = false;
    grpc::Status status;
    {
      absl::MutexLock lock(&mu_);
      std::swap(write, write_);
      schedule.swap(schedule_);
      if (failed_ && !finished_ && writing_ < 0 && prepare_slot_ < 0) {
        finished_ = true;
        finish = true;
        status = status_;
      }
      if (failed_) schedule = nullptr;
    }
    if (schedule != nullptr &&
        !svc_->pools_->downloads.Submit(std::move(schedule))) {
      {
        absl::MutexLock lock(&mu_);
        prepare_slot_ = -1;
        FailLocked(ToGrpcStatus(
            BusyStatus(svc_->pools_->downloads, "FetchArtifact")));
        if (!finished_ && writing_ < 0) {
          finished_ = true;
          finish = true;
          status = status_;
        }
      }
    }
    if (write != nullptr) {
      write_started_ns_.store(absl::GetCurrentTimeNanos());
      StartWrite(write);
    }
    if (finish) Finish(status);
  }

  TraceAgentService* const svc_;
  grpc::CallbackServerContext* const ctx_;
  const bool counted_;
  Caller caller_;
  v1::Artifact artifact_;
  std::uint64_t start_offset_ = 0;
  std::uint32_t chunk_ = 0;
  bool zstd_ = false;
  send_file::File in_;
  Slot slots_[2];

  absl::Mutex mu_;
  std::uint64_t next_offset_ ABSL_GUARDED_BY(mu_) = 0;
  int prepare_slot_ ABSL_GUARDED_BY(mu_) = -1;  // Being prepared.
  int ready_ ABSL_GUARDED_BY(mu_) = -1;         // Prepared, not written.
  int writing_ ABSL_GUARDED_BY(mu_) = -1;       // gRPC is writing it.
  std::uint64_t last_raw_ ABSL_GUARDED_BY(mu_) = 0;
  std::uint64_t sent_ = 0;  // Original bytes delivered (OnWriteDone, OnDone).
  const v1::ArtifactChunk* write_ ABSL_GUARDED_BY(mu_) = nullptr;
  std::function<void()> schedule_ ABSL_GUARDED_BY(mu_);
  bool failed_ ABSL_GUARDED_BY(mu_) = false;
  bool finished_ ABSL_GUARDED_BY(mu_) = false;
  grpc::Status status_;
  std::atomic<std::int64_t> write_started_ns_{0};
  std::atomic<bool> stall_cancelled_{false};
};

// ---------------------------------------------------------------------------
// RunCommandStreamed: the messages of one call, written one at a time.
//
// The worker (a commands-pool thread) pushes output pieces and the result,
// then calls End; gRPC's OnWriteDone writes the next. Finish comes once the
// queue is empty (at once if the client is gone), and the reactor deletes
// itself in OnDone, which gRPC runs only after Finish: the worker must not
// touch the stream after End.

class TraceAgentService::CommandStream final
    : public grpc::ServerWriteReactor<v1::RunCommandEvent> {
 public:
  // Queues a message; false (and dropped) if the client is gone.
  bool Push(v1::RunCommandEvent event) {
    const v1::RunCommandEvent* write = nullptr;
    {
      absl::MutexLock lock(&mu_);
      if (broken_) return false;
      queued_bytes_ += event.output().size();
      queue_.push_back(std::move(event));  // Keeps &front() valid.
      if (!writing_) {
        writing_ = true;
        write = &queue_.front();
      }
    }
    if (write != nullptr) StartWrite(write);
    return true;
  }

  // Whether fewer than `bytes` of output wait to be written.
  bool HasRoom(std::size_t bytes) {
    absl::MutexLock lock(&mu_);
    return !broken_ && queued_bytes_ < bytes;
  }

  // Waits up to `until` for HasRoom(bytes); false if it did not come.
  bool AwaitRoom(std::size_t bytes, absl::Time until) {
    absl::MutexLock lock(&mu_);
    auto room = [this, bytes]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
      return broken_ || queued_bytes_ < bytes;
    };
    mu_.AwaitWithDeadline(absl::Condition(&room), until);
    return !broken_ && queued_bytes_ < bytes;
  }

  // The last call of the worker: finishes once the queue is written.
  void End(const grpc::Status& status) {
    bool finish = false;
    {
      absl::MutexLock lock(&mu_);
      ended_ = true;
      status_ = status;
      if (!writing_) {
        finished_ = true;
        finish = true;
      }
    }
    if (finish) Finish(status);
  }

  void OnWriteDone(bool ok) override {
    const v1::RunCommandEvent* write = nullptr;
    bool finish = false;
    grpc::Status status;
    {
      absl::MutexLock lock(&mu_);
      queued_bytes_ -= queue_.front().output().size();
      queue_.pop_front();
      if (!ok) {  // The client went away: nothing more is written.
        broken_ = true;
        queue_.clear();
        queued_bytes_ = 0;
      }
      if (!queue_.empty()) {
        write = &queue_.front();
      } else {
        writing_ = false;
        if (ended_ && !finished_) {
          finished_ = true;
          finish = true;
          status = status_;
        }
      }
    }
    if (write != nullptr) StartWrite(write);
    if (finish) Finish(status);
  }

  void OnDone() override { delete this; }

 private:
  absl::Mutex mu_;
  std::deque<v1::RunCommandEvent> queue_ ABSL_GUARDED_BY(mu_);
  std::size_t queued_bytes_ ABSL_GUARDED_BY(mu_) = 0;
  bool writing_ ABSL_GUARDED_BY(mu_) = false;
  bool broken_ ABSL_GUARDED_BY(mu_) = false;
  bool ended_ ABSL_GUARDED_BY(mu_) = false;
  bool finished_ ABSL_GUARDED_BY(mu_) = false;
  grpc::Status status_ ABSL_GUARDED_BY(mu_);
};

// ---------------------------------------------------------------------------

TraceAgentService::TraceAgentService(TraceAgentServiceOptions options,
                                     SessionManager* manager,
                                     ArtifactStore* store,
                                     CommandRunner* runner,
                                     const Authorizer* authorizer,
                                     AuditLog* audit, AgentPools* pools)
    : options_(std::move(options)),
      manager_(manager),
      store_(store),
      runner_(runner),
      authorizer_(authorizer),
      audit_(audit),
      pools_(pools) {
  watchdog_ = std::thread([this] { WatchStalls(); });
}

TraceAgentService::~TraceAgentService() {
  {
    absl::MutexLock lock(&streams_mu_);
    stopping_ = true;
  }
  watchdog_.join();
}

void TraceAgentService::WatchStalls() {
  absl::MutexLock lock(&streams_mu_);
  while (!stopping_) {
    const std::int64_t now = absl::GetCurrentTimeNanos();
    for (FetchReactor* r : streams_) {
      r->CancelIfStalled(now, options_.download_stall_timeout);
    }
    auto stop = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(streams_mu_) {
      return stopping_;
    };
    streams_mu_.AwaitWithTimeout(absl::Condition(&stop), absl::Seconds(1));
  }
}

grpc::Status TraceAgentService::Allow(grpc::CallbackServerContext* ctx,
                                      absl::string_view operation, Role needed,
                                      Caller* caller) {
  const std::string authorization = Authorization(ctx);
  const std::string cert = CertIdentity(ctx);
  absl::StatusOr<Caller> c =
      authorizer_->Authorize(authorization, cert, operation, needed);
  if (!c.ok()) {
    spdlog::warn("{} from {} refused: {}", std::string(operation), ctx->peer(),
                 c.status().ToString());
    // Refusals are what an audit is for.
    Caller refused;
    refused.identity = RefusedIdentity(authorization, cert);
    audit_->Record(refused, ctx->peer(), operation, "", c.status());
    return ToGrpcStatus(c.status());
  }
  *caller = std::move(*c);
  return grpc::Status::OK;
}

grpc::ServerUnaryReactor* TraceAgentService::Run(
    grpc::CallbackServerContext* ctx, WorkPool* pool, absl::string_view what,
    std::function<grpc::Status()> work) {
  grpc::ServerUnaryReactor* reactor = ctx->DefaultReactor();
  if (pool == nullptr) {
    reactor->Finish(work());
    return reactor;
  }
  auto shared = std::make_shared<std::function<grpc::Status()>>(std::move(work));
  if (!pool->Submit([reactor, shared] { reactor->Finish((*shared)()); })) {
    ctx->AddTrailingMetadata("labtrace-busy", pool->name());
    reactor->Finish(ToGrpcStatus(BusyStatus(*pool, what)));
  }
  return reactor;
}

#define LABTRACE_ALLOW(op, role)                                 \
  Caller caller;                                                 \
  if (grpc::Status s = Allow(ctx, op, role, &caller); !s.ok()) { \
    auto* r = ctx->DefaultReactor();                             \
    r->Finish(s);                                                \
    return r;                                                    \
  }

v1::AgentInfo TraceAgentService::AgentInfoNow() const {
  v1::AgentInfo info;
  info.set_version(LABTRACE_VERSION);
  info.set_hostname(manager_->options().hostname);
  info.set_os(OsDescription());
  for (v1::BackendInfo& b : manager_->Backends())
    *info.add_backends() = std::move(b);
  for (v1::ProfileInfo& p : manager_->Profiles())
    *info.add_profiles() = std::move(p);
  *info.mutable_limits() = options_.limits;
  if (absl::StatusOr<std::uint64_t> free = FreeBytes(options_.data_dir);
      free.ok()) {
    info.set_free_disk_bytes(*free);
  }
  info.set_active_sessions(manager_->active_count());
  *info.mutable_started_at() = ToProtoTimestamp(options_.started_at);
  info.set_artifact_count(store_->count());
  *info.mutable_fence() = manager_->fence();
  info.set_running_commands(runner_->running());
  info.set_journal_error(manager_->journal_error());
  *info.mutable_now() = ToProtoTimestamp(absl::Now());
  return info;
}

grpc::ServerUnaryReactor* TraceAgentService::GetAgentInfo(
    grpc::CallbackServerContext* ctx, const v1::GetAgentInfoRequest*,
    v1::AgentInfo* resp) {
  LABTRACE_ALLOW("GetAgentInfo", Role::kRead);
  return Run(ctx, nullptr, "GetAgentInfo", [this, resp] {
    *resp = AgentInfoNow();
    return grpc::Status::OK;
  });
}

grpc::ServerUnaryReactor* TraceAgentService::StartTrace(
    grpc::CallbackServerContext* ctx, const v1::StartTraceRequest* req,
    v1::TraceSession* resp) {
  LABTRACE_ALLOW("StartTrace", Role::kControl);
  return Run(ctx, &pools_->control, "StartTrace",
             [this, ctx, req, resp, caller] {
               const std::string target =
                   absl::StrCat(req->name(), " profile=", req->profile());
               // Fail closed: nothing starts that the audit cannot record.
               if (absl::Status a = audit_->Begin(caller, ctx->peer(),
                                                  "StartTrace", target);
                   !a.ok()) {
                 return ToGrpcStatus(a);
               }
               absl::StatusOr<v1::TraceSession> r = manager_->Start(*req);
               audit_->Record(caller, ctx->peer(), "StartTrace", target,
                              r.status());
               return Assign(std::move(r), resp);
             });
}

grpc::ServerUnaryReactor* TraceAgentService::StopTrace(
    grpc::CallbackServerContext* ctx, const v1::StopTraceRequest* req,
    v1::StopTraceResponse* resp) {
  LABTRACE_ALLOW("StopTrace", Role::kControl);
  return Run(ctx, &pools_->control, "StopTrace", [this, ctx, req, resp, caller] {
    absl::StatusOr<v1::StopTraceResponse> r = manager_->Stop(req->name());
    audit_->Record(caller, ctx->peer(), "StopTrace", req->name(), r.status());
    return Assign(std::move(r), resp);
  });
}

grpc::ServerUnaryReactor* TraceAgentService::CancelTrace(
    grpc::CallbackServerContext* ctx, const v1::CancelTraceRequest* req,
    v1::TraceSession* resp) {
  LABTRACE_ALLOW("CancelTrace", Role::kControl);
  return Run(ctx, &pools_->control, "CancelTrace",
             [this, ctx, req, resp, caller] {
               absl::StatusOr<v1::TraceSession> r =
                   manager_->Cancel(req->name());
               audit_->Record(caller, ctx->peer(), "CancelTrace", req->name(),
                              r.status());
               return Assign(std::move(r), resp);
             });
}

grpc::ServerUnaryReactor* TraceAgentService::GetTrace(
    grpc::CallbackServerContext* ctx, const v1::GetTraceRequest* req,
    v1::TraceSession* resp) {
  LABTRACE_ALLOW("GetTrace", Role::kRead);
  return Run(ctx, nullptr, "GetTrace", [this, req, resp] {
    return Assign(manager_->Get(req->name()), resp);
  });
}

grpc::ServerUnaryReactor* TraceAgentService::ListTraces(
    grpc::CallbackServerContext* ctx, const v1::ListTracesRequest* req,
    v1::ListTracesResponse* resp) {
  LABTRACE_ALLOW("ListTraces", Role::kRead);
  return Run(ctx, nullptr, "ListTraces", [this, req, resp] {
    for (v1::TraceSession& s : manager_->List(req->include_finished())) {
      *resp->add_sessions() = std::move(s);
    }
    return grpc::Status::OK;
  });
}

grpc::ServerUnaryReactor* TraceAgentService::StopAllTraces(
    grpc::CallbackServerContext* ctx, const v1::StopAllTracesRequest* req,
    v1::StopAllTracesResponse* resp) {
  LABTRACE_ALLOW("StopAllTraces", Role::kAdmin);
  return Run(ctx, &pools_->emergency, "StopAllTraces",
             [this, ctx, req, resp, caller] {
               // Step commands first: they would otherwise keep running
               // under the traces being stopped. Their output is kept.
               for (v1::StoppedCommand& c :
                    runner_->KillAll("an emergency stop-all")) {
                 *resp->add_commands() = std::move(c);
               }
               v1::StopAllTracesResponse r = manager_->StopAll(req->discard());
               for (v1::StopAllResult& x : *r.mutable_results()) {
                 *resp->add_results() = std::move(x);
               }
               audit_->Record(caller, ctx->peer(), "StopAllTraces",
                              req->discard() ? "all (discard)" : "all",
                              absl::OkStatus());
               return grpc::Status::OK;
             });
}

grpc::ServerUnaryReactor* TraceAgentService::ListArtifacts(
    grpc::CallbackServerContext* ctx, const v1::ListArtifactsRequest* req,
    v1::ListArtifactsResponse* resp) {
  LABTRACE_ALLOW("ListArtifacts", Role::kRead);
  return Run(ctx, nullptr, "ListArtifacts", [this, req, resp] {
    return ToGrpcStatus(ListArtifactsPage(*store_, *req, resp));
  });
}

grpc::ServerUnaryReactor* TraceAgentService::GetArtifact(
    grpc::CallbackServerContext* ctx, const v1::GetArtifactRequest* req,
    v1::Artifact* resp) {
  LABTRACE_ALLOW("GetArtifact", Role::kRead);
  return Run(ctx, nullptr, "GetArtifact", [this, req, resp] {
    return Assign(store_->Get(req->artifact_id()), resp);
  });
}

grpc::ServerUnaryReactor* TraceAgentService::DeleteArtifact(
    grpc::CallbackServerContext* ctx, const v1::DeleteArtifactRequest* req,
    v1::DeleteArtifactResponse* resp) {
  LABTRACE_ALLOW("DeleteArtifact", Role::kAdmin);
  return Run(ctx, &pools_->control, "DeleteArtifact",
             [this, ctx, req, resp, caller] {
               if (absl::Status a = audit_->Begin(caller, ctx->peer(),
                                                  "DeleteArtifact",
                                                  req->artifact_id());
                   !a.ok()) {
                 return ToGrpcStatus(a);
               }
               absl::StatusOr<std::uint64_t> freed =
                   store_->Delete(req->artifact_id());
               audit_->Record(caller, ctx->peer(), "DeleteArtifact",
                              req->artifact_id(), freed.status());
               if (!freed.ok()) return ToGrpcStatus(freed.status());
               resp->set_freed_bytes(*freed);
               return grpc::Status::OK;
             });
}

grpc::ServerUnaryReactor* TraceAgentService::UploadArtifact(
    grpc::CallbackServerContext* ctx, const v1::UploadArtifactRequest* req,
    v1::UploadArtifactResponse* resp) {
  LABTRACE_ALLOW("UploadArtifact", Role::kControl);
  // Long and blocking, like a step command: it takes a command thread (busy
  // answers when all are taken), never a download thread, which streams
  // chunks and must not be held for minutes.
  return Run(ctx, &pools_->commands, "UploadArtifact",
             [this, ctx, req, resp, caller] {
               // The audit names where the bytes go (host, not the signature).
               std::string where;
               if (req->parts_size() > 0) {
                 const std::string& u = req->parts(0).url();
                 where = u.substr(0, u.find('?'));
               }
               const std::string target =
                   absl::StrCat(req->artifact_id(), " -> ", where);
               if (absl::Status a = audit_->Begin(caller, ctx->peer(),
                                                  "UploadArtifact", target);
                   !a.ok()) {
                 return ToGrpcStatus(a);
               }
               absl::StatusOr<v1::UploadArtifactResponse> r =
                   agent::UploadArtifact(
                       *store_, *req, [ctx] { return ctx->IsCancelled(); },
                       absl::FromChrono(ctx->deadline()));
               audit_->Record(caller, ctx->peer(), "UploadArtifact", target,
                              r.status());
               return Assign(std::move(r), resp);
             });
}

grpc::ServerUnaryReactor* TraceAgentService::RunCommand(
    grpc::CallbackServerContext* ctx, const v1::RunCommandRequest* req,
    v1::RunCommandResponse* resp) {
  LABTRACE_ALLOW("RunCommand", Role::kAdmin);
  return Run(ctx, &pools_->commands, "RunCommand",
             [this, ctx, req, resp, caller] {
               const std::string target = absl::StrCat(
                   req->trace().name(), " argv=",
                   QuoteForMessage(absl::StrJoin(req->argv(), " ")));
               if (absl::Status a =
                       audit_->Begin(caller, ctx->peer(), "RunCommand", target);
                   !a.ok()) {
                 return ToGrpcStatus(a);
               }
               absl::StatusOr<v1::RunCommandResponse> r =
                   runner_->Run(*req, [ctx] { return ctx->IsCancelled(); });
               audit_->Record(caller, ctx->peer(), "RunCommand", target,
                              r.status());
               return Assign(std::move(r), resp);
             });
}

void TraceAgentService::ForwardOutput(CommandStream* stream,
                                      const std::filesystem::path& file,
                                      std::uint64_t* offset, bool paced) {
  send_file::File in;
  std::string error;
  // Opened per poll, so the runner can move the finished log into the
  // store (Windows refuses to move a file that is open without sharing).
  if (!in.Open(file, &error)) return;
  std::string piece;
  for (;;) {
    if (paced
            ? !stream->AwaitRoom(kStreamQueueBytes,
                                 absl::Now() + options_.download_stall_timeout)
            : !stream->HasRoom(kStreamQueueBytes)) {
      if (paced) {
        spdlog::warn(
            "RunCommandStreamed: the client read nothing for {}; "
            "the rest of the output is only in the log artifact",
            absl::FormatDuration(options_.download_stall_timeout));
      }
      return;
    }
    piece.resize(kOutputPieceBytes);
    const std::int64_t n = in.ReadAt(*offset, piece.data(), piece.size());
    if (n <= 0) return;
    v1::RunCommandEvent event;
    event.set_output(piece.data(), static_cast<std::size_t>(n));
    *offset += static_cast<std::uint64_t>(n);
    if (!stream->Push(std::move(event))) return;
  }
}

grpc::ServerWriteReactor<v1::RunCommandEvent>*
TraceAgentService::RunCommandStreamed(grpc::CallbackServerContext* ctx,
                                      const v1::RunCommandRequest* req) {
  auto* stream = new CommandStream();
  Caller caller;
  if (grpc::Status s = Allow(ctx, "RunCommandStreamed", Role::kAdmin, &caller);
      !s.ok()) {
    stream->End(s);
    return stream;
  }
  const bool submitted =
      pools_->commands.Submit([this, ctx, req, stream, caller] {
        const std::string target = absl::StrCat(
            req->trace().name(),
            " argv=", QuoteForMessage(absl::StrJoin(req->argv(), " ")));
        if (absl::Status a = audit_->Begin(caller, ctx->peer(),
                                           "RunCommandStreamed", target);
            !a.ok()) {
          stream->End(ToGrpcStatus(a));
          return;
        }
        std::uint64_t offset = 0;
        absl::StatusOr<v1::RunCommandResponse> r = runner_->Run(
            *req, [ctx] { return ctx->IsCancelled(); },
            [&](const std::filesystem::path& log) {
              ForwardOutput(stream, log, &offset, /*paced=*/false);
            });
        audit_->Record(caller, ctx->peer(), "RunCommandStreamed", target,
                       r.status());
        if (!r.ok()) {
          stream->End(ToGrpcStatus(r.status()));
          return;
        }
        // The rest, from the stored log (which also holds labtrace's own
        // closing note), at the client's pace.
        if (!r->log_artifact().id().empty()) {
          if (absl::StatusOr<std::filesystem::path> path =
                  store_->PathOf(r->log_artifact().id());
              path.ok()) {
            ForwardOutput(stream, *path, &offset, /*paced=*/true);
          }
        }
        v1::RunCommandEvent last;
        *last.mutable_result() = std::move(*r);
        stream->Push(std::move(last));
        stream->End(grpc::Status::OK);
      });
  if (!submitted) {
    ctx->AddTrailingMetadata("labtrace-busy", pools_->commands.name());
    stream->End(
        ToGrpcStatus(BusyStatus(pools_->commands, "RunCommandStreamed")));
  }
  return stream;
}

grpc::ServerUnaryReactor* TraceAgentService::KeepAlive(
    grpc::CallbackServerContext* ctx, const v1::KeepAliveRequest* req,
    v1::KeepAliveResponse* resp) {
  LABTRACE_ALLOW("KeepAlive", Role::kControl);
  // Cheap and vital (a missed renewal stops traces): inline, never queued.
  return Run(ctx, nullptr, "KeepAlive", [this, req, resp] {
    return Assign(manager_->KeepAlive(*req), resp);
  });
}

grpc::ServerUnaryReactor* TraceAgentService::Fence(
    grpc::CallbackServerContext* ctx, const v1::FenceRequest* req,
    v1::FenceResponse* resp) {
  LABTRACE_ALLOW("Fence", Role::kAdmin);
  return Run(ctx, &pools_->emergency, "Fence", [this, ctx, req, resp, caller] {
    std::vector<v1::StoppedCommand> killed =
        runner_->KillAll("an emergency stop-all with a fence");
    absl::StatusOr<v1::FenceResponse> r =
        manager_->Fence(caller.identity, req->reason());
    if (r.ok()) {
      for (v1::StoppedCommand& c : killed) {
        *r->mutable_stopped()->add_commands() = std::move(c);
      }
    }
    audit_->Record(caller, ctx->peer(), "Fence",
                   QuoteForMessage(req->reason()), r.status());
    return Assign(std::move(r), resp);
  });
}

grpc::ServerUnaryReactor* TraceAgentService::Unfence(
    grpc::CallbackServerContext* ctx, const v1::UnfenceRequest*,
    v1::FenceState* resp) {
  LABTRACE_ALLOW("Unfence", Role::kAdmin);
  return Run(ctx, &pools_->emergency, "Unfence", [this, ctx, resp, caller] {
    if (absl::Status a = audit_->Begin(caller, ctx->peer(), "Unfence", "");
        !a.ok()) {
      return ToGrpcStatus(a);
    }
    absl::StatusOr<v1::FenceState> r = manager_->Unfence(caller.identity);
    audit_->Record(caller, ctx->peer(), "Unfence", "", r.status());
    return Assign(std::move(r), resp);
  });
}

grpc::ServerWriteReactor<v1::ArtifactChunk>* TraceAgentService::FetchArtifact(
    grpc::CallbackServerContext* ctx, const v1::FetchArtifactRequest* req) {
  Caller caller;
  if (grpc::Status s = Allow(ctx, "FetchArtifact", Role::kRead, &caller);
      !s.ok()) {
    auto* r = new FetchReactor(this, ctx, /*counted=*/false);
    r->Refuse(s);
    return r;
  }
  const bool slot = ++pools_->active_downloads <= pools_->max_downloads;
  auto* reactor = new FetchReactor(this, ctx, /*counted=*/true);
  if (!slot) {
    ctx->AddTrailingMetadata("labtrace-busy", "downloads");
    reactor->Refuse(grpc::Status(
        grpc::StatusCode::UNAVAILABLE,
        absl::StrCat(kBusyPrefix, "FetchArtifact: ", pools_->max_downloads,
                     " downloads are in progress, the limit (max_downloads); "
                     "retry in a moment")));
    return reactor;
  }
  absl::StatusOr<v1::Artifact> artifact = store_->Get(req->artifact_id());
  absl::StatusOr<std::filesystem::path> path =
      artifact.ok() ? store_->PathOf(req->artifact_id())
                    : absl::StatusOr<std::filesystem::path>(artifact.status());
  if (!path.ok()) {
    reactor->Refuse(ToGrpcStatus(path.status()));
    return reactor;
  }
  const std::uint64_t size = artifact->size_bytes();
  if (req->offset() > size) {
    reactor->Refuse(grpc::Status(
        grpc::StatusCode::OUT_OF_RANGE,
        absl::StrCat("offset ", req->offset(), " is past the end of artifact ",
                     artifact->id(), " (", size, " bytes)")));
    return reactor;
  }
  const std::uint32_t chunk =
      req->chunk_size() == 0 ? options_.default_chunk_bytes : req->chunk_size();
  if (chunk > kMaxChunkBytes || chunk < kMinChunkBytes) {
    reactor->Refuse(grpc::Status(
        grpc::StatusCode::INVALID_ARGUMENT,
        absl::StrCat("chunk_size ", chunk, " is outside ", kMinChunkBytes,
                     "..", kMaxChunkBytes, " (0 means the agent's default)")));
    return reactor;
  }
  reactor->Begin(std::move(caller), std::move(*artifact), std::move(*path),
                 req->offset(), chunk,
                 req->compression() == v1::COMPRESSION_ZSTD);
  return reactor;
}

}  // namespace labtrace::agent
