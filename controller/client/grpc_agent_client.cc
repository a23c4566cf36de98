// GrpcAgentClient: AgentClient over a gRPC channel.

#include <algorithm>
#include <cstdlib>
#include <chrono>
#include <optional>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "common/zstd_codec.h"
#include "controller/client/agent_client.h"
#include "grpcpp/grpcpp.h"
#include "labtrace/v1/agent.grpc.pb.h"

namespace labtrace::controller {

void CallCanceller::Register(grpc::ClientContext* ctx) {
  absl::MutexLock lock(&mu_);
  live_.insert(ctx);
  if (cancelled_) ctx->TryCancel();
}

void CallCanceller::Unregister(grpc::ClientContext* ctx) {
  absl::MutexLock lock(&mu_);
  live_.erase(ctx);
}

void CallCanceller::CancelAll() {
  absl::MutexLock lock(&mu_);
  cancelled_ = true;
  for (grpc::ClientContext* ctx : live_) ctx->TryCancel();
}

void CallCanceller::Reset() {
  absl::MutexLock lock(&mu_);
  cancelled_ = false;
}

bool CallCanceller::cancelled() const {
  absl::MutexLock lock(&mu_);
  return cancelled_;
}

namespace {

// The agent's "busy, nothing done, retry" answer (agent_pools.h).
constexpr absl::string_view kBusyPrefix = "agent busy: ";

bool IsBusy(const grpc::Status& s) {
  return s.error_code() == grpc::StatusCode::UNAVAILABLE &&
         absl::StartsWith(s.error_message(), kBusyPrefix);
}

absl::Status FromGrpc(const grpc::Status& s, const Host& host) {
  if (s.ok()) return absl::OkStatus();
  std::string msg = s.error_message();
  if (IsBusy(s)) {
    return absl::ResourceExhaustedError(
        absl::StrCat("agent at ", host.address, " stayed busy: ", msg));
  }
  if (s.error_code() == grpc::StatusCode::UNAVAILABLE) {
    msg = absl::StrCat("agent at ", host.address, " unreachable: ", msg);
  }
  return absl::Status(static_cast<absl::StatusCode>(s.error_code()), msg);
}

// The gRPC target of an inventory address: IP literals go straight to the
// ipv4:/ipv6: resolvers (no DNS resolver per channel), names through DNS.
std::string Target(const std::string& address) {
  const std::size_t colon = address.rfind(':');
  const std::string host =
      colon == std::string::npos ? address : address.substr(0, colon);
  if (absl::StartsWith(host, "[") && absl::EndsWith(host, "]")) {
    return "ipv6:" + address;
  }
  int dots = 0;
  for (char c : host) {
    if (c == '.') {
      ++dots;
    } else if (c < '0' || c > '9') {
      return address;
    }
  }
  return dots == 3 ? "ipv4:" + address : address;
}

// Whether a call may be sent again after a connection failure: it changes
// nothing, or doing it twice is the same as once.
enum class Repeat { kSafe, kOnlyIfBusy };

class GrpcAgentClient final : public AgentClient {
 public:
  GrpcAgentClient(Host host, GrpcClientOptions options)
      : host_(std::move(host)), options_(options) {
    grpc::ChannelArguments args;
    args.SetMaxReceiveMessageSize(16 << 20);
    // An 8 MiB stream window (gRPC's own starts at 64 KiB and grows by
    // probing): downloads keep the pipe full from the first chunk on
    // (tests/bench/fetch_throughput.sh: 0.77 -> 0.82 of nginx on loopback).
    args.SetInt(GRPC_ARG_HTTP2_STREAM_LOOKAHEAD_BYTES, 8 << 20);
    // Retry refused connections quickly instead of backing off for seconds.
    args.SetInt(GRPC_ARG_INITIAL_RECONNECT_BACKOFF_MS, 200);
    args.SetInt(GRPC_ARG_MAX_RECONNECT_BACKOFF_MS, 1000);
    // gRPC also uses this as the minimum time a connection attempt (TCP and
    // HTTP/2 handshake) may take. Slightly above our connect timeout, so a
    // host that accepts TCP but never answers (hung) is still CONNECTING
    // when Connect() gives up, which tells it apart from a refused one.
    args.SetInt(
        GRPC_ARG_MIN_RECONNECT_BACKOFF_MS,
        static_cast<int>(absl::ToInt64Milliseconds(options_.connect_timeout)) +
            1000);
    std::shared_ptr<grpc::ChannelCredentials> creds =
        grpc::InsecureChannelCredentials();
    if (host_.tls.enabled) {
      grpc::SslCredentialsOptions ssl;
      ssl.pem_root_certs = host_.tls.ca_pem;  // Empty: the system's roots.
      ssl.pem_cert_chain = host_.tls.cert_pem;
      ssl.pem_private_key = host_.tls.key_pem;
      creds = grpc::SslCredentials(ssl);
      if (!host_.tls.server_name.empty()) {
        args.SetSslTargetNameOverride(host_.tls.server_name);
      }
    }
    channel_ = grpc::CreateCustomChannel(Target(host_.address), creds, args);
    stub_ = v1::TraceAgent::NewStub(channel_);
  }

  absl::StatusOr<v1::AgentInfo> GetAgentInfo(absl::Time deadline) override {
    return Call<v1::GetAgentInfoRequest, v1::AgentInfo>(
        {}, deadline, Repeat::kSafe,
        [this](grpc::ClientContext* c, const auto& r, auto* o) {
          return stub_->GetAgentInfo(c, r, o);
        });
  }
  absl::StatusOr<v1::TraceSession> StartTrace(const v1::StartTraceRequest& req,
                                              absl::Time deadline) override {
    return Call<v1::StartTraceRequest, v1::TraceSession>(
        req, deadline, Repeat::kOnlyIfBusy,
        [this](grpc::ClientContext* c, const auto& r, auto* o) {
          return stub_->StartTrace(c, r, o);
        });
  }
  absl::StatusOr<v1::StopTraceResponse> StopTrace(
      const std::string& name, absl::Time deadline) override {
    v1::StopTraceRequest req;
    req.set_name(name);
    return Call<v1::StopTraceRequest, v1::StopTraceResponse>(
        req, deadline, Repeat::kSafe,
        [this](grpc::ClientContext* c, const auto& r, auto* o) {
          return stub_->StopTrace(c, r, o);
        });
  }
  absl::StatusOr<v1::TraceSession> CancelTrace(const std::string& name,
                                               absl::Time deadline) override {
    v1::CancelTraceRequest req;
    req.set_name(name);
    return Call<v1::CancelTraceRequest, v1::TraceSession>(
        req, deadline, Repeat::kSafe,
        [this](grpc::ClientContext* c, const auto& r, auto* o) {
          return stub_->CancelTrace(c, r, o);
        });
  }
  absl::StatusOr<v1::ListTracesResponse> ListTraces(
      bool include_finished, absl::Time deadline) override {
    v1::ListTracesRequest req;
    req.set_include_finished(include_finished);
    return Call<v1::ListTracesRequest, v1::ListTracesResponse>(
        req, deadline, Repeat::kSafe,
        [this](grpc::ClientContext* c, const auto& r, auto* o) {
          return stub_->ListTraces(c, r, o);
        });
  }
  absl::StatusOr<v1::StopAllTracesResponse> StopAllTraces(
      bool discard, absl::Time deadline) override {
    v1::StopAllTracesRequest req;
    req.set_discard(discard);
    return Call<v1::StopAllTracesRequest, v1::StopAllTracesResponse>(
        req, deadline, Repeat::kSafe,
        [this](grpc::ClientContext* c, const auto& r, auto* o) {
          return stub_->StopAllTraces(c, r, o);
        });
  }
  // Every page: the caller gets the whole list.
  absl::StatusOr<v1::ListArtifactsResponse> ListArtifacts(
      const v1::ListArtifactsRequest& req, absl::Time deadline) override {
    v1::ListArtifactsResponse all;
    v1::ListArtifactsRequest page = req;
    for (;;) {
      absl::StatusOr<v1::ListArtifactsResponse> r =
          Call<v1::ListArtifactsRequest, v1::ListArtifactsResponse>(
              page, deadline, Repeat::kSafe,
              [this](grpc::ClientContext* c, const auto& r, auto* o) {
                return stub_->ListArtifacts(c, r, o);
              });
      if (!r.ok()) return r.status();
      for (v1::Artifact& a : *r->mutable_artifacts()) {
        *all.add_artifacts() = std::move(a);
      }
      if (r->next_page_token().empty()) return all;
      page.set_page_token(r->next_page_token());
    }
  }
  absl::StatusOr<v1::DeleteArtifactResponse> DeleteArtifact(
      const std::string& id, absl::Time deadline) override {
    v1::DeleteArtifactRequest req;
    req.set_artifact_id(id);
    return Call<v1::DeleteArtifactRequest, v1::DeleteArtifactResponse>(
        req, deadline, Repeat::kOnlyIfBusy,
        [this](grpc::ClientContext* c, const auto& r, auto* o) {
          return stub_->DeleteArtifact(c, r, o);
        });
  }
  absl::StatusOr<v1::UploadArtifactResponse> UploadArtifact(
      const v1::UploadArtifactRequest& req, absl::Time deadline) override {
    return Call<v1::UploadArtifactRequest, v1::UploadArtifactResponse>(
        req, deadline, Repeat::kOnlyIfBusy,
        [this](grpc::ClientContext* c, const auto& r, auto* o) {
          return stub_->UploadArtifact(c, r, o);
        });
  }
  absl::StatusOr<v1::RunCommandResponse> RunCommand(
      const v1::RunCommandRequest& req, absl::Time deadline) override {
    return Call<v1::RunCommandRequest, v1::RunCommandResponse>(
        req, deadline, Repeat::kOnlyIfBusy,
        [this](grpc::ClientContext* c, const auto& r, auto* o) {
          return stub_->RunCommand(c, r, o);
        });
  }
  absl::StatusOr<v1::RunCommandResponse> RunCommandStreamed(
      const v1::RunCommandRequest& req, absl::Time deadline,
      const std::function<void(const std::string&)>& output) override {
    absl::Duration backoff = absl::Milliseconds(100);
    for (;;) {
      if (absl::Status s = Connect(deadline); !s.ok()) return s;
      grpc::ClientContext ctx;
      ctx.set_deadline(absl::ToChronoTime(deadline));
      if (!host_.token.empty()) {
        ctx.AddMetadata("authorization", "Bearer " + host_.token);
      }
      Registration reg(options_.canceller, &ctx);
      std::unique_ptr<grpc::ClientReader<v1::RunCommandEvent>> reader =
          stub_->RunCommandStreamed(&ctx, req);
      v1::RunCommandEvent event;
      std::optional<v1::RunCommandResponse> result;
      bool any = false;
      while (reader->Read(&event)) {
        any = true;
        if (event.has_result()) {
          result = std::move(*event.mutable_result());
        } else if (!event.output().empty()) {
          output(event.output());
        }
      }
      grpc::Status s = reader->Finish();
      if (s.ok()) {
        if (result) return *std::move(result);
        return absl::DataLossError(absl::StrCat(
            host_.name, ": the agent ended RunCommandStreamed without a result"));
      }
      if (!any && s.error_code() == grpc::StatusCode::UNIMPLEMENTED) {
        // An agent from before RunCommandStreamed.
        absl::StatusOr<v1::RunCommandResponse> r = RunCommand(req, deadline);
        if (r.ok() && !r->output_tail().empty()) output(r->output_tail());
        return r;
      }
      // Busy: nothing ran, so the call may be sent again.
      if (any || !IsBusy(s) || absl::Now() + backoff >= deadline || Cancelled()) {
        return FromGrpc(s, host_);
      }
      absl::SleepFor(backoff);
      backoff = std::min(backoff * 2, absl::Seconds(2));
    }
  }
  absl::StatusOr<v1::KeepAliveResponse> KeepAlive(
      const v1::KeepAliveRequest& req, absl::Time deadline) override {
    return Call<v1::KeepAliveRequest, v1::KeepAliveResponse>(
        req, deadline, Repeat::kSafe,
        [this](grpc::ClientContext* c, const auto& r, auto* o) {
          return stub_->KeepAlive(c, r, o);
        });
  }
  absl::StatusOr<v1::FenceResponse> Fence(const std::string& reason,
                                          absl::Time deadline) override {
    v1::FenceRequest req;
    req.set_reason(reason);
    return Call<v1::FenceRequest, v1::FenceResponse>(
        req, deadline, Repeat::kSafe,
        [this](grpc::ClientContext* c, const auto& r, auto* o) {
          return stub_->Fence(c, r, o);
        });
  }
  absl::StatusOr<v1::FenceState> Unfence(absl::Time deadline) override {
    return Call<v1::UnfenceRequest, v1::FenceState>(
        {}, deadline, Repeat::kSafe,
        [this](grpc::ClientContext* c, const auto& r, auto* o) {
          return stub_->Unfence(c, r, o);
        });
  }

  absl::Status FetchArtifact(
      const std::string& id, std::uint64_t offset,
      const std::function<absl::Status(const v1::ArtifactChunk&)>& sink,
      absl::Time deadline) override {
    if (absl::Status s = Connect(deadline); !s.ok()) return s;
    grpc::ClientContext ctx;
    ctx.set_deadline(absl::ToChronoTime(deadline));
    if (!host_.token.empty()) {
      ctx.AddMetadata("authorization", "Bearer " + host_.token);
    }
    Registration reg(options_.canceller, &ctx);
    v1::FetchArtifactRequest req;
    req.set_artifact_id(id);
    req.set_offset(offset);
    if (options_.compress_downloads) req.set_compression(v1::COMPRESSION_ZSTD);
    std::unique_ptr<grpc::ClientReader<v1::ArtifactChunk>> reader =
        stub_->FetchArtifact(&ctx, req);
    v1::ArtifactChunk chunk;
    absl::Status sink_status;
    std::string raw;
    while (reader->Read(&chunk)) {
      if (chunk.compression() == v1::COMPRESSION_ZSTD) {
        sink_status = zstd::DecompressChunk(chunk.data(), chunk.raw_size(), &raw);
        if (!sink_status.ok()) {
          sink_status = absl::DataLossError(absl::StrCat(
              host_.name, ": chunk at offset ", chunk.offset(), ": ",
              sink_status.message()));
          ctx.TryCancel();
          break;
        }
        chunk.mutable_data()->swap(raw);
        chunk.set_compression(v1::COMPRESSION_NONE);
      } else if (chunk.compression() != v1::COMPRESSION_NONE) {
        sink_status = absl::DataLossError(absl::StrCat(
            host_.name, ": the agent sent a chunk in an unknown encoding (",
            static_cast<int>(chunk.compression()), ")"));
        ctx.TryCancel();
        break;
      }
      sink_status = sink(chunk);
      if (!sink_status.ok()) {
        ctx.TryCancel();
        break;
      }
    }
    grpc::Status s = reader->Finish();
    if (!sink_status.ok()) return sink_status;
    return FromGrpc(s, host_);
  }

 private:
  struct Registration {
    Registration(CallCanceller* c, grpc::ClientContext* ctx)
        : c_(c), ctx_(ctx) {
      if (c_) c_->Register(ctx_);
    }
    ~Registration() {
      if (c_) c_->Unregister(ctx_);
    }
    CallCanceller* c_;
    grpc::ClientContext* ctx_;
  };

  // Waits for the connection, up to the connect timeout (and the call's
  // deadline). A refused connection is UNAVAILABLE at once (the first
  // failed attempt, not the end of the timeout: 1 % of 10,000 hosts down
  // otherwise cost every worker seconds); one that neither connects nor
  // fails (a hung host) is DEADLINE_EXCEEDED at the connect timeout.
  absl::Status Connect(absl::Time deadline) {
    const absl::Time until =
        std::min(deadline, absl::Now() + options_.connect_timeout);
    grpc_connectivity_state state = channel_->GetState(/*try_to_connect=*/true);
    while (state != GRPC_CHANNEL_READY) {
      if (state == GRPC_CHANNEL_TRANSIENT_FAILURE ||
          state == GRPC_CHANNEL_SHUTDOWN) {
        return absl::UnavailableError(absl::StrCat(
            "agent at ", host_.address, " unreachable (connection failed)"));
      }
      if (!channel_->WaitForStateChange(state, absl::ToChronoTime(until))) {
        return absl::DeadlineExceededError(absl::StrCat(
            "agent at ", host_.address, " did not answer within ",
            absl::FormatDuration(options_.connect_timeout),
            " (connect timeout)"));
      }
      state = channel_->GetState(/*try_to_connect=*/true);
    }
    return absl::OkStatus();
  }

  // One call, repeated with backoff while the agent is busy and the
  // deadline allows. Calls safe to repeat are also repeated after a refused
  // connection (an agent restarting: ~0.1 s), but only for a second (or the
  // connect timeout, if shorter): a host that is down is reported as such,
  // not waited for (at 10,000 hosts with 1 % down, waiting the whole
  // connect timeout for each doubled a stop-all).
  template <typename Req, typename Resp, typename Fn>
  absl::StatusOr<Resp> Call(const Req& req, absl::Time deadline, Repeat repeat,
                            Fn fn) {
    absl::Duration backoff = absl::Milliseconds(100);
    const absl::Time reconnect_until =
        std::min(deadline, absl::Now() + std::min(options_.connect_timeout,
                                                  absl::Seconds(1)));
    for (;;) {
      if (absl::Status s = Connect(deadline); !s.ok()) {
        if (repeat == Repeat::kSafe && s.code() == absl::StatusCode::kUnavailable &&
            absl::Now() + backoff < reconnect_until && !Cancelled()) {
          absl::SleepFor(backoff);
          backoff = std::min(backoff * 2, absl::Seconds(2));
          continue;
        }
        return s;
      }
      grpc::ClientContext ctx;
      ctx.set_deadline(absl::ToChronoTime(deadline));
      if (!host_.token.empty()) {
        ctx.AddMetadata("authorization", "Bearer " + host_.token);
      }
      Registration reg(options_.canceller, &ctx);
      Resp resp;
      grpc::Status s = fn(&ctx, req, &resp);
      if (s.ok()) return resp;
      const bool busy = IsBusy(s);
      const bool retry =
          busy || (repeat == Repeat::kSafe &&
                   s.error_code() == grpc::StatusCode::UNAVAILABLE);
      if (!retry ||
          absl::Now() + backoff >= (busy ? deadline : reconnect_until) ||
          Cancelled()) {
        return FromGrpc(s, host_);
      }
      absl::SleepFor(backoff);
      backoff = std::min(backoff * 2, absl::Seconds(2));
    }
  }

  bool Cancelled() const {
    return options_.canceller != nullptr && options_.canceller->cancelled();
  }

  const Host host_;
  const GrpcClientOptions options_;
  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<v1::TraceAgent::Stub> stub_;
};

}  // namespace

std::unique_ptr<AgentClient> MakeGrpcAgentClient(
    const Host& host, const GrpcClientOptions& options) {
  return std::make_unique<GrpcAgentClient>(host, options);
}

}  // namespace labtrace::controller
