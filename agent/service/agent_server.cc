#include "agent/service/agent_server.h"

#include <chrono>

#include "absl/strings/str_cat.h"
#include "agent/backend/embedded_profiles.h"
#include "agent/backend/wpr_backend.h"
#include "common/file_ops.h"
#include "common/file_util.h"
#include "common/host_info.h"
#include "common/proto_time.h"
#include "common/status_macros.h"
#include "grpcpp/ext/proto_server_reflection_plugin.h"
#include "grpcpp/grpcpp.h"
#include "grpcpp/health_check_service_interface.h"
#include "grpcpp/resource_quota.h"
#include "spdlog/spdlog.h"
#ifndef _WIN32
#include "agent/backend/perf_backend.h"
#endif

namespace labtrace::agent {
namespace {

// Keys and configs every user of the machine can read: tokens' hashes are
// harmless, but a TLS key is not.
void WarnAboutReadableSecrets(const AgentConfig& config) {
  for (const std::string& f : {config.tls.key_file}) {
    if (!f.empty() && file_ops::IsWorldReadable(PathFromUtf8(f))) {
      spdlog::warn("{} (a private key) is readable by every user of this "
                   "machine; chmod 600 it",
                   f);
    }
  }
}

// TLS credentials from PEM files, or insecure ones when TLS is off.
absl::StatusOr<std::shared_ptr<grpc::ServerCredentials>> MakeServerCredentials(
    const TlsConfig& tls) {
  if (!tls.enabled()) return grpc::InsecureServerCredentials();
  grpc::SslServerCredentialsOptions opts;
  grpc::SslServerCredentialsOptions::PemKeyCertPair pair;
  LABTRACE_ASSIGN_OR_RETURN(pair.cert_chain, ReadFile(PathFromUtf8(tls.cert_file)));
  LABTRACE_ASSIGN_OR_RETURN(pair.private_key, ReadFile(PathFromUtf8(tls.key_file)));
  opts.pem_key_cert_pairs.push_back(std::move(pair));
  if (!tls.client_ca_file.empty()) {
    LABTRACE_ASSIGN_OR_RETURN(opts.pem_root_certs,
                              ReadFile(PathFromUtf8(tls.client_ca_file)));
    // Clients without a certificate from this CA fail the handshake.
    opts.client_certificate_request =
        GRPC_SSL_REQUEST_AND_REQUIRE_CLIENT_CERTIFICATE_AND_VERIFY;
  }
  return grpc::SslServerCredentials(opts);
}

}  // namespace

absl::StatusOr<std::unique_ptr<AgentServer>> AgentServer::Start(
    const AgentConfig& config) {
  LABTRACE_RETURN_IF_ERROR(ValidateAgentConfig(config));
  LABTRACE_RETURN_IF_ERROR(EnsureDirectory(config.data_dir));
  const std::filesystem::path profiles_dir = config.data_dir / "profiles";
  LABTRACE_RETURN_IF_ERROR(WriteEmbeddedProfiles(profiles_dir));

  WarnAboutReadableSecrets(config);
  std::unique_ptr<AgentServer> server(new AgentServer());
  server->store_ = std::make_unique<ArtifactStore>(config.data_dir);
  LABTRACE_RETURN_IF_ERROR(server->store_->Load());

  std::map<std::string, std::unique_ptr<TraceBackend>> backends;
  backends["wpr"] =
      std::make_unique<WprBackend>(WprBackendOptions{config.wpr, profiles_dir, {}});
#ifndef _WIN32
  backends["perf"] =
      std::make_unique<PerfBackend>(config.perf, config.data_dir / "tmp");
#endif

  SessionManagerOptions mopts;
  mopts.max_sessions = config.max_sessions;
  mopts.max_duration = config.max_duration;
  mopts.hostname = HostName();
  mopts.journal_path = config.data_dir / "journal.json";
  mopts.fence_path = config.data_dir / "fence.json";
  mopts.min_free_bytes = config.min_free_bytes;
  mopts.max_session_bytes = config.max_session_bytes;
  mopts.max_lease = config.max_lease;
  server->metrics_ = std::make_unique<Metrics>();
  Metrics* metrics = server->metrics_.get();
  mopts.on_session_event = [metrics](const std::string& backend,
                                     const std::string& event) {
    metrics->SessionEvent(backend, event);
  };
  server->manager_ = std::make_unique<SessionManager>(
      mopts, config.profiles, std::move(backends), server->store_.get());
  // Recovery before anything else touches the work dirs: what a previous
  // process left is salvaged, then the work dirs are cleaned.
  LABTRACE_RETURN_IF_ERROR(server->manager_->Recover());
  server->manager_->StartWatchdog();
  server->pools_ = std::make_unique<AgentPools>(config.pools);

  TraceAgentServiceOptions sopts;
  sopts.data_dir = config.data_dir;
  sopts.default_chunk_bytes = config.default_chunk_bytes;
  sopts.limits.set_max_sessions(config.max_sessions);
  *sopts.limits.mutable_max_duration() = ToProtoDuration(config.max_duration);
  *sopts.limits.mutable_start_timeout() =
      ToProtoDuration(config.wpr.start_timeout);
  *sopts.limits.mutable_stop_timeout() =
      ToProtoDuration(config.wpr.stop_timeout);
  sopts.limits.set_min_free_bytes(config.min_free_bytes);
  *sopts.limits.mutable_max_lease() = ToProtoDuration(config.max_lease);
  sopts.limits.set_max_commands(config.pools.max_commands);
  sopts.limits.set_max_downloads(config.pools.max_downloads);
  sopts.started_at = absl::Now();
  sopts.download_stall_timeout = config.pools.download_stall_timeout;
  sopts.zstd_level = config.zstd_level;
  server->runner_ = std::make_unique<CommandRunner>(config.exec, mopts.hostname,
                                                    server->manager_.get(),
                                                    server->store_.get());
  server->authorizer_ = std::make_unique<Authorizer>(config.tokens);
  server->audit_ = std::make_unique<AuditLog>(
      config.audit_log.empty() ? config.data_dir / "audit.log"
                               : PathFromUtf8(config.audit_log));
  server->service_ = std::make_unique<TraceAgentService>(
      sopts, server->manager_.get(), server->store_.get(),
      server->runner_.get(), server->authorizer_.get(), server->audit_.get(),
      server->pools_.get());
  LABTRACE_ASSIGN_OR_RETURN(std::shared_ptr<grpc::ServerCredentials> creds,
                            MakeServerCredentials(config.tls));

  grpc::EnableDefaultHealthCheckService(true);
  grpc::reflection::InitProtoReflectionServerBuilderPlugin();
  grpc::ServerBuilder builder;
  grpc::ResourceQuota quota("labtrace-agent");
  quota.SetMaxThreads(config.max_threads);
  builder.SetResourceQuota(quota);
  // Without this, gRPC sets SO_REUSEPORT and a second agent on the same port
  // would start "fine" and share the traffic with the first.
  builder.AddChannelArgument(GRPC_ARG_ALLOW_REUSEPORT, 0);
  builder.AddListeningPort(config.listen, creds, &server->port_);
  builder.RegisterService(server->service_.get());
  builder.experimental().SetInterceptorCreators(
      MetricsInterceptors(server->metrics_.get()));
  server->server_ = builder.BuildAndStart();
  if (server->server_ == nullptr || server->port_ == 0) {
    return absl::UnavailableError(
        absl::StrCat("cannot listen on ", config.listen,
                     " (address in use, or not an address of this machine?)"));
  }
  for (const std::string& addr : {config.listen, config.rest_listen}) {
    if (addr == "off" || IsLoopbackListenAddress(addr) || !config.insecure) {
      continue;
    }
    const bool authenticated =
        config.tls.enabled() &&
        (!config.tls.client_ca_file.empty() || !config.tokens.empty());
    if (!authenticated) {
      spdlog::warn(
          "INSECURE: listening on {} {} (--insecure): whoever can reach this "
          "port can start traces, fetch files and run allowed commands{}",
          addr,
          !config.tls.enabled()
              ? (config.tokens.empty()
                     ? "without TLS or authentication"
                     : "without TLS: bearer tokens travel in clear text")
              : "with TLS but no client authentication",
          config.tokens.empty() && config.tls.client_ca_file.empty()
              ? ", as admin"
              : "");
    }
  }
  if (config.rest_listen != "off") {
    RestGatewayDeps deps{
        server->manager_.get(),
        server->store_.get(),
        server->runner_.get(),
        server->authorizer_.get(),
        server->audit_.get(),
        server->metrics_.get(),
        server->pools_.get(),
        [svc = server->service_.get()] { return svc->AgentInfoNow(); },
        config.zstd_level};
    HttpLimits limits;
    limits.max_connections = config.rest.max_connections;
    limits.header_timeout = config.rest.request_timeout;
    limits.body_timeout = config.rest.request_timeout;
    limits.handshake_timeout = config.rest.request_timeout;
    limits.idle_timeout = config.rest.idle_timeout;
    limits.write_stall_timeout = config.pools.download_stall_timeout;
    LABTRACE_ASSIGN_OR_RETURN(
        server->rest_, RestGateway::Start(config.rest_listen, config.tls,
                                          limits, std::move(deps)));
    spdlog::info("REST mirror on {} (port {})", config.rest_listen,
                 server->rest_->port());
  }
  spdlog::info("labtrace-agent {} listening on {} (port {}, {}{}), data dir {}",
               LABTRACE_VERSION, config.listen, server->port_,
               config.tls.client_ca_file.empty()
                   ? (config.tls.enabled() ? "TLS" : "plaintext")
                   : "mutual TLS",
               config.tokens.empty()
                   ? ", no tokens"
                   : absl::StrCat(", ", config.tokens.size(), " tokens"),
               PathToUtf8(config.data_dir));
  return server;
}

void AgentServer::Wait() { server_->Wait(); }

void AgentServer::Shutdown(absl::Duration grace) {
  if (shut_down_ || server_ == nullptr) return;  // Never started listening.
  shut_down_ = true;
  if (rest_ != nullptr) rest_->Stop();
  // Step commands first (their logs are kept): a RunCommand call lasts as
  // long as its program, and the gRPC server waits for running calls.
  runner_->KillAll("the agent's shutdown");
  spdlog::debug("shutdown: stopping the gRPC server");
  server_->Shutdown(std::chrono::system_clock::now() +
                    absl::ToChronoMilliseconds(grace));
  spdlog::debug("shutdown: gRPC server stopped");
  // A command started in between; then no call is left: drain the pools.
  runner_->KillAll("the agent's shutdown");
  pools_.reset();
  // Nothing lost: finish every active trace into an artifact.
  v1::StopAllTracesResponse r =
      manager_->StopAll(/*discard=*/false, "shutdown");
  for (const v1::StopAllResult& s : r.results()) {
    if (s.error().empty()) {
      spdlog::info("shutdown: stopped {} -> {}", s.session().name(),
                   s.artifact().file_name());
    } else {
      spdlog::error("shutdown: could not stop {}: {}", s.session().name(),
                    s.error());
    }
  }
}

AgentServer::~AgentServer() { Shutdown(absl::Seconds(1)); }

}  // namespace labtrace::agent
