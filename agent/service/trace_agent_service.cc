#include "agent/service/trace_agent_service.h"

#include <cerrno>
#include <cstring>
#include <fstream>
#include <vector>

#include "absl/strings/str_cat.h"
#include "agent/service/status_convert.h"
#include "common/file_util.h"
#include "common/host_info.h"
#include "common/names.h"
#include "common/proto_time.h"
#include "spdlog/spdlog.h"

namespace labtrace::agent {
namespace {

// 2 MiB keeps every message under gRPC's default 4 MiB receive limit, so
// stock clients (grpcurl) can ask for the largest chunk too.
constexpr std::uint32_t kMaxChunkBytes = 2 << 20;

template <typename T>
grpc::Status Assign(absl::StatusOr<T> result, T* out) {
  if (!result.ok()) return ToGrpcStatus(result.status());
  *out = std::move(*result);
  return grpc::Status::OK;
}

// The verified client certificate's CN under mutual TLS, else "".
std::string CertIdentity(const grpc::ServerContext* ctx) {
  std::shared_ptr<const grpc::AuthContext> auth = ctx->auth_context();
  if (auth == nullptr || !auth->IsPeerAuthenticated()) return "";
  std::vector<grpc::string_ref> ids = auth->GetPeerIdentity();
  return ids.empty() ? "" : std::string(ids[0].data(), ids[0].size());
}

}  // namespace

TraceAgentService::TraceAgentService(TraceAgentServiceOptions options,
                                     SessionManager* manager,
                                     ArtifactStore* store,
                                     CommandRunner* runner,
                                     const Authorizer* authorizer,
                                     AuditLog* audit)
    : options_(std::move(options)),
      manager_(manager),
      store_(store),
      runner_(runner),
      authorizer_(authorizer),
      audit_(audit) {}

grpc::Status TraceAgentService::Allow(grpc::ServerContext* ctx,
                                      absl::string_view operation, Role needed,
                                      Caller* caller) const {
  std::string authorization;
  const auto& md = ctx->client_metadata();
  if (auto it = md.find("authorization"); it != md.end()) {
    authorization.assign(it->second.data(), it->second.size());
  }
  absl::StatusOr<Caller> c = authorizer_->Authorize(
      authorization, CertIdentity(ctx), operation, needed);
  if (!c.ok()) {
    spdlog::warn("{} from {} refused: {}", std::string(operation), ctx->peer(),
                 c.status().ToString());
    return ToGrpcStatus(c.status());
  }
  *caller = std::move(*c);
  return grpc::Status::OK;
}

template <typename T>
grpc::Status TraceAgentService::Audited(grpc::ServerContext* ctx,
                                        const Caller& caller,
                                        absl::string_view operation,
                                        absl::string_view target,
                                        absl::StatusOr<T> result, T* out) {
  audit_->Record(caller, ctx->peer(), operation, target, result.status());
  return Assign(std::move(result), out);
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
  return info;
}

#define LABTRACE_ALLOW(op, role)                                 \
  Caller caller;                                                 \
  if (grpc::Status s = Allow(ctx, op, role, &caller); !s.ok()) { \
    return s;                                                    \
  }

grpc::Status TraceAgentService::RunCommand(grpc::ServerContext* ctx,
                                           const v1::RunCommandRequest* req,
                                           v1::RunCommandResponse* resp) {
  LABTRACE_ALLOW("RunCommand", Role::kAdmin);
  return Audited(ctx, caller, "RunCommand",
                 absl::StrCat(req->trace().name(), " ",
                              req->argv_size() > 0 ? req->argv(0) : ""),
                 runner_->Run(*req, [ctx] { return ctx->IsCancelled(); }),
                 resp);
}

grpc::Status TraceAgentService::GetAgentInfo(grpc::ServerContext* ctx,
                                             const v1::GetAgentInfoRequest*,
                                             v1::AgentInfo* resp) {
  LABTRACE_ALLOW("GetAgentInfo", Role::kRead);
  *resp = AgentInfoNow();
  return grpc::Status::OK;
}

grpc::Status TraceAgentService::StartTrace(grpc::ServerContext* ctx,
                                           const v1::StartTraceRequest* req,
                                           v1::TraceSession* resp) {
  LABTRACE_ALLOW("StartTrace", Role::kControl);
  return Audited(ctx, caller, "StartTrace",
                 absl::StrCat(req->name(), " profile=", req->profile()),
                 manager_->Start(*req), resp);
}

grpc::Status TraceAgentService::StopTrace(grpc::ServerContext* ctx,
                                          const v1::StopTraceRequest* req,
                                          v1::StopTraceResponse* resp) {
  LABTRACE_ALLOW("StopTrace", Role::kControl);
  return Audited(ctx, caller, "StopTrace", req->name(),
                 manager_->Stop(req->name()), resp);
}

grpc::Status TraceAgentService::CancelTrace(grpc::ServerContext* ctx,
                                            const v1::CancelTraceRequest* req,
                                            v1::TraceSession* resp) {
  LABTRACE_ALLOW("CancelTrace", Role::kControl);
  return Audited(ctx, caller, "CancelTrace", req->name(),
                 manager_->Cancel(req->name()), resp);
}

grpc::Status TraceAgentService::GetTrace(grpc::ServerContext* ctx,
                                         const v1::GetTraceRequest* req,
                                         v1::TraceSession* resp) {
  LABTRACE_ALLOW("GetTrace", Role::kRead);
  return Assign(manager_->Get(req->name()), resp);
}

grpc::Status TraceAgentService::ListTraces(grpc::ServerContext* ctx,
                                           const v1::ListTracesRequest* req,
                                           v1::ListTracesResponse* resp) {
  LABTRACE_ALLOW("ListTraces", Role::kRead);
  for (v1::TraceSession& s : manager_->List(req->include_finished())) {
    *resp->add_sessions() = std::move(s);
  }
  return grpc::Status::OK;
}

grpc::Status TraceAgentService::StopAllTraces(
    grpc::ServerContext* ctx, const v1::StopAllTracesRequest* req,
    v1::StopAllTracesResponse* resp) {
  LABTRACE_ALLOW("StopAllTraces", Role::kAdmin);
  return Audited(ctx, caller, "StopAllTraces",
                 req->discard() ? "all (discard)" : "all",
                 absl::StatusOr<v1::StopAllTracesResponse>(
                     manager_->StopAll(req->discard())),
                 resp);
}

grpc::Status TraceAgentService::ListArtifacts(
    grpc::ServerContext* ctx, const v1::ListArtifactsRequest* req,
    v1::ListArtifactsResponse* resp) {
  LABTRACE_ALLOW("ListArtifacts", Role::kRead);
  if (!req->run_id().empty() && !IsValidName(req->run_id())) {
    return ToGrpcStatus(ValidateName("run_id", req->run_id()));
  }
  if (!req->name().empty() && !IsValidName(req->name())) {
    return ToGrpcStatus(ValidateName("name", req->name()));
  }
  for (v1::Artifact& a : store_->List(req->run_id(), req->name())) {
    *resp->add_artifacts() = std::move(a);
  }
  return grpc::Status::OK;
}

grpc::Status TraceAgentService::GetArtifact(grpc::ServerContext* ctx,
                                            const v1::GetArtifactRequest* req,
                                            v1::Artifact* resp) {
  LABTRACE_ALLOW("GetArtifact", Role::kRead);
  return Assign(store_->Get(req->artifact_id()), resp);
}

grpc::Status TraceAgentService::DeleteArtifact(
    grpc::ServerContext* ctx, const v1::DeleteArtifactRequest* req,
    v1::DeleteArtifactResponse* resp) {
  LABTRACE_ALLOW("DeleteArtifact", Role::kAdmin);
  absl::StatusOr<std::uint64_t> freed = store_->Delete(req->artifact_id());
  audit_->Record(caller, ctx->peer(), "DeleteArtifact", req->artifact_id(),
                 freed.status());
  if (!freed.ok()) return ToGrpcStatus(freed.status());
  resp->set_freed_bytes(*freed);
  return grpc::Status::OK;
}

grpc::Status TraceAgentService::FetchArtifact(
    grpc::ServerContext* ctx, const v1::FetchArtifactRequest* req,
    grpc::ServerWriter<v1::ArtifactChunk>* writer) {
  LABTRACE_ALLOW("FetchArtifact", Role::kRead);
  absl::StatusOr<v1::Artifact> artifact = store_->Get(req->artifact_id());
  if (!artifact.ok()) return ToGrpcStatus(artifact.status());
  absl::StatusOr<std::filesystem::path> path =
      store_->PathOf(req->artifact_id());
  if (!path.ok()) return ToGrpcStatus(path.status());
  const std::uint64_t size = artifact->size_bytes();
  if (req->offset() > size) {
    return grpc::Status(
        grpc::StatusCode::OUT_OF_RANGE,
        absl::StrCat("offset ", req->offset(), " is past the end of artifact ",
                     artifact->id(), " (", size, " bytes)"));
  }
  std::uint32_t chunk =
      req->chunk_size() == 0 ? options_.default_chunk_bytes : req->chunk_size();
  if (chunk > kMaxChunkBytes) {
    return grpc::Status(
        grpc::StatusCode::INVALID_ARGUMENT,
        absl::StrCat("chunk_size ", chunk, " exceeds the maximum of ",
                     kMaxChunkBytes));
  }
  // An open file keeps the bytes readable even if the artifact is deleted
  // mid-stream (POSIX); large reads bypass the stream's buffer.
  std::ifstream in(*path, std::ios::binary);
  if (!in) {
    return grpc::Status(grpc::StatusCode::INTERNAL,
                        absl::StrCat("cannot open ", artifact->file_name(),
                                     ": ", std::strerror(errno)));
  }
  std::uint64_t offset = req->offset();
  in.seekg(static_cast<std::streamoff>(offset));
  v1::ArtifactChunk msg;
  msg.set_total_size(size);
  msg.set_sha256(artifact->sha256());
  std::string buffer;
  bool first = true;
  grpc::Status status = grpc::Status::OK;
  while (first || offset < size) {
    if (ctx->IsCancelled()) {
      status = grpc::Status(grpc::StatusCode::CANCELLED,
                            "client cancelled the fetch");
      break;
    }
    const std::size_t want =
        static_cast<std::size_t>(std::min<std::uint64_t>(chunk, size - offset));
    buffer.resize(want);
    in.read(buffer.data(), static_cast<std::streamsize>(want));
    const std::size_t got = in ? want
                               : static_cast<std::size_t>(
                                     std::max<std::streamsize>(in.gcount(), 0));
    if (got < want) {
      status = grpc::Status(
          grpc::StatusCode::DATA_LOSS,
          absl::StrCat("artifact ", artifact->id(), " is shorter than its ",
                       size, " bytes (read failed at offset ", offset + got,
                       ")"));
      break;
    }
    msg.set_offset(offset);
    msg.set_data(std::move(buffer));
    if (!writer->Write(msg)) {
      status = grpc::Status(grpc::StatusCode::CANCELLED, "client went away");
      break;
    }
    buffer = std::move(*msg.mutable_data());
    if (first) {
      msg.clear_total_size();
      msg.clear_sha256();
      first = false;
    }
    offset += got;
  }
  return status;
}

}  // namespace labtrace::agent
