// fleet_sim: N simulated labtrace agents in one process, for the fleet-scale
// benchmark (tests/bench/fleet_scale.sh). Each agent is a loopback port
// serving the real labtrace.v1.TraceAgent contract with a cheap fake backend
// (sessions and tiny artifacts in memory); the port a call came in on (its
// :authority) picks the agent. Some agents are "dead" (a port nobody listens
// on: connection refused) and some "hung" (a socket that is listened on but
// never accepted: the TCP connection opens, HTTP/2 never answers).
//
// Usage:
//   fleet_sim --agents N [--dead-percent P] [--hung-percent P]
//             --inventory FILE [--ready FILE]
// Writes the inventory (hosts sim00000.. with their addresses and labels
// state=live|dead|hung), then FILE given by --ready, and serves until SIGINT
// or SIGTERM.

#include <netinet/in.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <iostream>
#include <map>
#include <mutex>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "common/file_util.h"
#include "grpcpp/grpcpp.h"
#include "labtrace/v1/agent.grpc.pb.h"

namespace {

using labtrace::v1::TraceAgent;
namespace v1 = labtrace::v1;

struct Agent {
  std::map<std::string, v1::TraceSession> active;
  std::map<std::string, v1::Artifact> artifacts;
  int next_artifact = 0;
};

// The fake artifact's bytes (small: the benchmark times the control plane).
const std::string kBytes(4096, 'e');
const std::string kSha = labtrace::Sha256Hex(kBytes);

class Sim final : public TraceAgent::CallbackService {
 public:
  grpc::ServerUnaryReactor* GetAgentInfo(grpc::CallbackServerContext* ctx,
                                         const v1::GetAgentInfoRequest*,
                                         v1::AgentInfo* resp) override {
    const std::string who = Who(ctx);
    resp->set_version("sim");
    resp->set_hostname(who);
    resp->set_os("Simulated 1.0");
    v1::BackendInfo* b = resp->add_backends();
    b->set_name("perf");
    b->set_available(true);
    v1::ProfileInfo* p = resp->add_profiles();
    p->set_name("cpu");
    p->set_backend("perf");
    resp->set_free_disk_bytes(100ull << 30);
    std::lock_guard<std::mutex> lock(mu_);
    resp->set_active_sessions(static_cast<int>(agents_[who].active.size()));
    return Done(ctx, grpc::Status::OK);
  }

  grpc::ServerUnaryReactor* StartTrace(grpc::CallbackServerContext* ctx,
                                       const v1::StartTraceRequest* req,
                                       v1::TraceSession* resp) override {
    std::lock_guard<std::mutex> lock(mu_);
    Agent& a = agents_[Who(ctx)];
    if (a.active.count(req->name())) {
      return Done(ctx, grpc::Status(grpc::StatusCode::ALREADY_EXISTS,
                                    "a trace named " + req->name() +
                                        " is already RUNNING on this agent"));
    }
    v1::TraceSession& s = a.active[req->name()];
    s.set_name(req->name());
    s.set_profile(req->profile());
    s.set_backend("perf");
    s.set_run_id(req->run_id());
    s.set_phase(req->phase());
    s.set_state(v1::TRACE_STATE_RUNNING);
    *resp = s;
    return Done(ctx, grpc::Status::OK);
  }

  grpc::ServerUnaryReactor* StopTrace(grpc::CallbackServerContext* ctx,
                                      const v1::StopTraceRequest* req,
                                      v1::StopTraceResponse* resp) override {
    std::lock_guard<std::mutex> lock(mu_);
    Agent& a = agents_[Who(ctx)];
    auto it = a.active.find(req->name());
    if (it == a.active.end()) {
      return Done(ctx, grpc::Status(grpc::StatusCode::NOT_FOUND,
                                    "no active trace named " + req->name()));
    }
    StopLocked(a, it->second, resp->mutable_session(), resp->mutable_artifact());
    a.active.erase(it);
    return Done(ctx, grpc::Status::OK);
  }

  grpc::ServerUnaryReactor* CancelTrace(grpc::CallbackServerContext* ctx,
                                        const v1::CancelTraceRequest* req,
                                        v1::TraceSession* resp) override {
    std::lock_guard<std::mutex> lock(mu_);
    Agent& a = agents_[Who(ctx)];
    auto it = a.active.find(req->name());
    if (it == a.active.end()) {
      return Done(ctx, grpc::Status(grpc::StatusCode::NOT_FOUND,
                                    "no active trace named " + req->name()));
    }
    *resp = it->second;
    resp->set_state(v1::TRACE_STATE_CANCELLED);
    a.active.erase(it);
    return Done(ctx, grpc::Status::OK);
  }

  grpc::ServerUnaryReactor* GetTrace(grpc::CallbackServerContext* ctx,
                                     const v1::GetTraceRequest* req,
                                     v1::TraceSession* resp) override {
    std::lock_guard<std::mutex> lock(mu_);
    Agent& a = agents_[Who(ctx)];
    auto it = a.active.find(req->name());
    if (it == a.active.end()) {
      return Done(ctx, grpc::Status(grpc::StatusCode::NOT_FOUND, "not found"));
    }
    *resp = it->second;
    return Done(ctx, grpc::Status::OK);
  }

  grpc::ServerUnaryReactor* ListTraces(grpc::CallbackServerContext* ctx,
                                       const v1::ListTracesRequest*,
                                       v1::ListTracesResponse* resp) override {
    std::lock_guard<std::mutex> lock(mu_);
    for (const auto& [name, s] : agents_[Who(ctx)].active) {
      *resp->add_sessions() = s;
    }
    return Done(ctx, grpc::Status::OK);
  }

  grpc::ServerUnaryReactor* StopAllTraces(
      grpc::CallbackServerContext* ctx, const v1::StopAllTracesRequest*,
      v1::StopAllTracesResponse* resp) override {
    std::lock_guard<std::mutex> lock(mu_);
    Agent& a = agents_[Who(ctx)];
    for (auto& [name, s] : a.active) {
      v1::StopAllResult* r = resp->add_results();
      StopLocked(a, s, r->mutable_session(), r->mutable_artifact());
    }
    a.active.clear();
    return Done(ctx, grpc::Status::OK);
  }

  grpc::ServerUnaryReactor* ListArtifacts(
      grpc::CallbackServerContext* ctx, const v1::ListArtifactsRequest* req,
      v1::ListArtifactsResponse* resp) override {
    std::lock_guard<std::mutex> lock(mu_);
    for (const auto& [id, art] : agents_[Who(ctx)].artifacts) {
      if (!req->run_id().empty() && art.run_id() != req->run_id()) continue;
      *resp->add_artifacts() = art;
    }
    return Done(ctx, grpc::Status::OK);
  }

  grpc::ServerUnaryReactor* GetArtifact(grpc::CallbackServerContext* ctx,
                                        const v1::GetArtifactRequest* req,
                                        v1::Artifact* resp) override {
    std::lock_guard<std::mutex> lock(mu_);
    Agent& a = agents_[Who(ctx)];
    auto it = a.artifacts.find(req->artifact_id());
    if (it == a.artifacts.end()) {
      return Done(ctx, grpc::Status(grpc::StatusCode::NOT_FOUND, "not found"));
    }
    *resp = it->second;
    return Done(ctx, grpc::Status::OK);
  }

  grpc::ServerWriteReactor<v1::ArtifactChunk>* FetchArtifact(
      grpc::CallbackServerContext* ctx,
      const v1::FetchArtifactRequest* req) override {
    class Once : public grpc::ServerWriteReactor<v1::ArtifactChunk> {
     public:
      Once(bool found, std::uint64_t offset) {
        if (!found) {
          Finish(grpc::Status(grpc::StatusCode::NOT_FOUND, "not found"));
          return;
        }
        msg_.set_offset(offset);
        msg_.set_total_size(kBytes.size());
        msg_.set_sha256(kSha);
        msg_.set_data(kBytes.substr(std::min<std::size_t>(offset, kBytes.size())));
        StartWriteAndFinish(&msg_, grpc::WriteOptions(), grpc::Status::OK);
      }
      void OnDone() override { delete this; }

     private:
      v1::ArtifactChunk msg_;
    };
    std::lock_guard<std::mutex> lock(mu_);
    const Agent& a = agents_[Who(ctx)];
    return new Once(a.artifacts.count(req->artifact_id()) > 0, req->offset());
  }

  grpc::ServerUnaryReactor* DeleteArtifact(
      grpc::CallbackServerContext* ctx, const v1::DeleteArtifactRequest* req,
      v1::DeleteArtifactResponse*) override {
    std::lock_guard<std::mutex> lock(mu_);
    agents_[Who(ctx)].artifacts.erase(req->artifact_id());
    return Done(ctx, grpc::Status::OK);
  }

  grpc::ServerUnaryReactor* KeepAlive(grpc::CallbackServerContext* ctx,
                                      const v1::KeepAliveRequest*,
                                      v1::KeepAliveResponse*) override {
    return Done(ctx, grpc::Status::OK);
  }

 private:
  static std::string Who(grpc::CallbackServerContext* ctx) {
    const grpc::string_ref a = ctx->ExperimentalGetAuthority();
    return std::string(a.data(), a.size());
  }

  static grpc::ServerUnaryReactor* Done(grpc::CallbackServerContext* ctx,
                                        const grpc::Status& status) {
    grpc::ServerUnaryReactor* r = ctx->DefaultReactor();
    r->Finish(status);
    return r;
  }

  // The sim's artifacts would pile up (every run adds files to 10,000
  // agents): only the last few per agent are kept.
  void StopLocked(Agent& a, const v1::TraceSession& s, v1::TraceSession* out,
                  v1::Artifact* art) {
    *out = s;
    out->set_state(v1::TRACE_STATE_COMPLETED);
    art->set_id(absl::StrCat(s.name(), "_", a.next_artifact++, ".perf.data"));
    art->set_file_name(art->id());
    art->set_session_name(s.name());
    art->set_run_id(s.run_id());
    art->set_phase(s.phase());
    art->set_size_bytes(kBytes.size());
    art->set_sha256(kSha);
    out->set_artifact_id(art->id());
    a.artifacts[art->id()] = *art;
    while (a.artifacts.size() > 8) a.artifacts.erase(a.artifacts.begin());
  }

  std::mutex mu_;
  std::map<std::string, Agent> agents_;
};

// A loopback TCP socket bound to a free port: listening (hung agents) or
// closed again (dead agents: nothing listens there afterwards).
int FreePort(bool listen_forever) {
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof(addr);
  if (fd < 0 || ::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0 ||
      ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
    std::perror("fleet_sim: socket");
    std::exit(1);
  }
  if (listen_forever) {
    ::listen(fd, 4096);  // Never accepted: connects succeed, nothing answers.
  } else {
    ::close(fd);
  }
  return ntohs(addr.sin_port);
}

}  // namespace

int main(int argc, char** argv) {
  int agents = 0;
  double dead_percent = 1, hung_percent = 1;
  std::string inventory, ready;
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string flag = argv[i], value = argv[i + 1];
    if (flag == "--agents") agents = std::atoi(value.c_str());
    else if (flag == "--dead-percent") dead_percent = std::atof(value.c_str());
    else if (flag == "--hung-percent") hung_percent = std::atof(value.c_str());
    else if (flag == "--inventory") inventory = value;
    else if (flag == "--ready") ready = value;
    else {
      std::cerr << "fleet_sim: unknown flag " << flag << "\n";
      return 2;
    }
  }
  if (agents < 1 || inventory.empty()) {
    std::cerr << "usage: fleet_sim --agents N [--dead-percent P] "
                 "[--hung-percent P] --inventory FILE [--ready FILE]\n";
    return 2;
  }
  // One descriptor per listening port and per connection.
  rlimit rl{};
  if (::getrlimit(RLIMIT_NOFILE, &rl) == 0) {
    rl.rlim_cur = rl.rlim_max;
    ::setrlimit(RLIMIT_NOFILE, &rl);
  }
  sigset_t stop;
  sigemptyset(&stop);
  sigaddset(&stop, SIGINT);
  sigaddset(&stop, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &stop, nullptr);

  const int dead = static_cast<int>(agents * dead_percent / 100);
  const int hung = static_cast<int>(agents * hung_percent / 100);
  // Spread the dead and hung hosts through the inventory.
  auto state_of = [&](int i) {
    if (dead > 0 && i % (agents / dead) == 0 && i / (agents / dead) < dead)
      return "dead";
    if (hung > 0 && i % (agents / hung) == 1 && i / (agents / hung) < hung)
      return "hung";
    return "live";
  };
  Sim sim;
  grpc::ServerBuilder builder;
  builder.AddChannelArgument(GRPC_ARG_ALLOW_REUSEPORT, 0);
  std::vector<int> ports(static_cast<std::size_t>(agents), 0);
  std::vector<std::string> states(static_cast<std::size_t>(agents));
  for (int i = 0; i < agents; ++i) {
    states[i] = state_of(i);
    if (states[i] == "live") {
      builder.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(),
                               &ports[i]);
    } else if (states[i] == "hung") {
      ports[i] = FreePort(true);
    }
  }
  builder.RegisterService(&sim);
  std::unique_ptr<grpc::Server> server = builder.BuildAndStart();
  if (server == nullptr) {
    std::cerr << "fleet_sim: the server did not start\n";
    return 1;
  }
  // Dead ports only now, so that no live agent is later bound to one.
  for (int i = 0; i < agents; ++i) {
    if (states[i] == "dead") ports[i] = FreePort(false);
  }
  std::ofstream inv(inventory);
  inv << "# " << agents << " simulated agents (tests/bench/fleet_sim)\n"
      << "defaults:\n  connect_timeout: 3s\nhosts:\n";
  for (int i = 0; i < agents; ++i) {
    if (states[i] == "live" && ports[i] == 0) {
      std::cerr << "fleet_sim: port " << i << " was not bound\n";
      return 1;
    }
    char name[32];
    std::snprintf(name, sizeof(name), "sim%05d", i);
    inv << "  - {name: " << name << ", address: \"127.0.0.1:" << ports[i]
        << "\", labels: {state: " << states[i] << "}}\n";
  }
  inv.close();
  std::cerr << "fleet_sim: " << agents << " agents (" << dead << " dead, "
            << hung << " hung) up\n";
  if (!ready.empty()) std::ofstream(ready) << "ready\n";
  int sig = 0;
  sigwait(&stop, &sig);
  server->Shutdown(std::chrono::system_clock::now() + std::chrono::seconds(2));
  return 0;
}
