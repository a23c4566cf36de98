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

std::string Peer(grpc::ServerContext* ctx) { return ctx->peer(); }

}  // namespace

TraceAgentService::TraceAgentService(TraceAgentServiceOptions options,
                                     SessionManager* manager,
                                     ArtifactStore* store,
                                     CommandRunner* runner)
    : options_(std::move(options)),
      manager_(manager),
      store_(store),
      runner_(runner) {}

grpc::Status TraceAgentService::RunCommand(grpc::ServerContext* ctx,
                                           const v1::RunCommandRequest* req,
                                           v1::RunCommandResponse* resp) {
  spdlog::info("RunCommand name={} argv0={} from {}",
               QuoteForMessage(req->trace().name()),
               QuoteForMessage(req->argv_size() > 0 ? req->argv(0) : ""),
               Peer(ctx));
  return Assign(runner_->Run(*req, [ctx] { return ctx->IsCancelled(); }), resp);
}

grpc::Status TraceAgentService::GetAgentInfo(grpc::ServerContext*,
                                             const v1::GetAgentInfoRequest*,
                                             v1::AgentInfo* resp) {
  resp->set_version(LABTRACE_VERSION);
  resp->set_hostname(manager_->options().hostname);
  resp->set_os(OsDescription());
  for (v1::BackendInfo& b : manager_->Backends())
    *resp->add_backends() = std::move(b);
  for (v1::ProfileInfo& p : manager_->Profiles())
    *resp->add_profiles() = std::move(p);
  *resp->mutable_limits() = options_.limits;
  if (absl::StatusOr<std::uint64_t> free = FreeBytes(options_.data_dir);
      free.ok()) {
    resp->set_free_disk_bytes(*free);
  }
  resp->set_active_sessions(manager_->active_count());
  const std::int64_t ns = absl::ToUnixNanos(options_.started_at);
  resp->mutable_started_at()->set_seconds(ns / 1000000000);
  resp->mutable_started_at()->set_nanos(
      static_cast<std::int32_t>(ns % 1000000000));
  resp->set_artifact_count(store_->count());
  return grpc::Status::OK;
}

grpc::Status TraceAgentService::StartTrace(grpc::ServerContext* ctx,
                                           const v1::StartTraceRequest* req,
                                           v1::TraceSession* resp) {
  spdlog::info("StartTrace name={} profile={} from {}",
               QuoteForMessage(req->name()), QuoteForMessage(req->profile()),
               Peer(ctx));
  return Assign(manager_->Start(*req), resp);
}

grpc::Status TraceAgentService::StopTrace(grpc::ServerContext* ctx,
                                          const v1::StopTraceRequest* req,
                                          v1::StopTraceResponse* resp) {
  spdlog::info("StopTrace name={} from {}", QuoteForMessage(req->name()),
               Peer(ctx));
  return Assign(manager_->Stop(req->name()), resp);
}

grpc::Status TraceAgentService::CancelTrace(grpc::ServerContext* ctx,
                                            const v1::CancelTraceRequest* req,
                                            v1::TraceSession* resp) {
  spdlog::info("CancelTrace name={} from {}", QuoteForMessage(req->name()),
               Peer(ctx));
  return Assign(manager_->Cancel(req->name()), resp);
}

grpc::Status TraceAgentService::GetTrace(grpc::ServerContext*,
                                         const v1::GetTraceRequest* req,
                                         v1::TraceSession* resp) {
  return Assign(manager_->Get(req->name()), resp);
}

grpc::Status TraceAgentService::ListTraces(grpc::ServerContext*,
                                           const v1::ListTracesRequest* req,
                                           v1::ListTracesResponse* resp) {
  for (v1::TraceSession& s : manager_->List(req->include_finished())) {
    *resp->add_sessions() = std::move(s);
  }
  return grpc::Status::OK;
}

grpc::Status TraceAgentService::StopAllTraces(
    grpc::ServerContext* ctx, const v1::StopAllTracesRequest* req,
    v1::StopAllTracesResponse* resp) {
  spdlog::warn("StopAllTraces discard={} from {}", req->discard(), Peer(ctx));
  *resp = manager_->StopAll(req->discard());
  return grpc::Status::OK;
}

grpc::Status TraceAgentService::ListArtifacts(
    grpc::ServerContext*, const v1::ListArtifactsRequest* req,
    v1::ListArtifactsResponse* resp) {
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

grpc::Status TraceAgentService::GetArtifact(grpc::ServerContext*,
                                            const v1::GetArtifactRequest* req,
                                            v1::Artifact* resp) {
  return Assign(store_->Get(req->artifact_id()), resp);
}

grpc::Status TraceAgentService::DeleteArtifact(
    grpc::ServerContext* ctx, const v1::DeleteArtifactRequest* req,
    v1::DeleteArtifactResponse* resp) {
  spdlog::info("DeleteArtifact id={} from {}",
               QuoteForMessage(req->artifact_id()), Peer(ctx));
  absl::StatusOr<std::uint64_t> freed = store_->Delete(req->artifact_id());
  if (!freed.ok()) return ToGrpcStatus(freed.status());
  resp->set_freed_bytes(*freed);
  return grpc::Status::OK;
}

grpc::Status TraceAgentService::FetchArtifact(
    grpc::ServerContext* ctx, const v1::FetchArtifactRequest* req,
    grpc::ServerWriter<v1::ArtifactChunk>* writer) {
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
