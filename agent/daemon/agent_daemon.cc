#include "agent/daemon/agent_daemon.h"

#include <cstdlib>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/console.h"
#include "common/file_util.h"
#include "common/logging.h"
#include "common/service_host.h"
#include "spdlog/spdlog.h"

namespace labtrace::agent {

absl::StatusOr<std::unique_ptr<AgentRun>> AgentRun::Start(
    const AgentCommandLine& cmd) {
  std::unique_ptr<AgentRun> run(new AgentRun());
  if (!cmd.config_path.empty()) {
    spdlog::info("config {}", PathToUtf8(cmd.config_path));
  }
  absl::StatusOr<std::unique_ptr<AgentServer>> server =
      AgentServer::Start(cmd.config);
  if (!server.ok()) return server.status();
  run->server_ = std::move(*server);
  if (!cmd.port_file.empty()) {
    absl::Status s = WriteFileAtomically(
        PathFromUtf8(cmd.port_file),
        absl::StrCat(run->server_->port(), "\n", run->server_->rest_port(),
                     "\n"));
    if (!s.ok()) {
      return absl::Status(s.code(),
                          absl::StrCat("cannot write the port file: ",
                                       s.message()));
    }
  }
  return run;
}

AgentRun::~AgentRun() {
  // Normally Wait() joined them; the server's destructor shuts down
  // otherwise.
  if (shutdown_thread_.joinable()) shutdown_thread_.join();
  if (hurry_thread_.joinable()) hurry_thread_.join();
}

void AgentRun::RequestStop(const std::string& why) {
  std::lock_guard<std::mutex> lock(mu_);
  ++stop_requests_;
  if (stop_requests_ == 1) {
    spdlog::info("{}: shutting down (active traces are stopped and kept)",
                 why);
    shutdown_thread_ = std::thread([this] {
      // No grace period: idle client connections would hold a graceful gRPC
      // shutdown for seconds. Calls in flight are cancelled for their
      // clients, but their work completes (a stop in progress still stores
      // its file), and Shutdown then stops and keeps every active trace.
      server_->Shutdown(absl::ZeroDuration());
      std::lock_guard<std::mutex> lock(mu_);
      done_ = true;
      cv_.notify_all();
    });
    return;
  }
  if (stop_requests_ == 2) {
    spdlog::warn(
        "{} again while shutting down: hurrying. Traces not yet being "
        "stopped are cancelled; stops in progress are left to their tools and "
        "the next start salvages what they wrote",
        why);
    hurry_thread_ = std::thread([this] {
      SessionManager& m = server_->manager();
      for (const v1::TraceSession& s : m.List(false)) {
        if (s.state() == v1::TRACE_STATE_RUNNING) (void)m.Cancel(s.name());
      }
      m.FlushJournal(absl::Seconds(5));
      std::lock_guard<std::mutex> lock(mu_);
      hurried_ = true;
      cv_.notify_all();
    });
    return;
  }
  spdlog::warn("{} again ({} requests): already hurrying", why, stop_requests_);
}

bool AgentRun::Wait() {
  // Not server_->Wait(): a hurried stop must not wait for the server's
  // shutdown, which waits for the stops in progress.
  std::unique_lock<std::mutex> lock(mu_);
  cv_.wait(lock, [this] { return done_ || hurried_; });
  if (hurried_ && !done_) {
    spdlog::warn("labtrace-agent stopped in a hurry");
    spdlog::default_logger()->flush();
    return true;
  }
  lock.unlock();
  if (shutdown_thread_.joinable()) shutdown_thread_.join();
  if (hurry_thread_.joinable()) hurry_thread_.join();
  spdlog::info("labtrace-agent stopped");
  return false;
}

int RunAgentInConsole(const AgentCommandLine& cmd) {
  // The handler may fire before the server exists (a Ctrl-C during start):
  // then it is remembered and honoured once the server is up.
  struct Shared {
    std::mutex mu;
    std::condition_variable cv;
    AgentRun* run = nullptr;
    std::string early_stop;
    bool finished = false;
  };
  auto shared = std::make_shared<Shared>();
  console::InstallStopHandler([shared](const console::StopRequest& r) {
    std::unique_lock<std::mutex> lock(shared->mu);
    if (shared->run == nullptr) {
      if (shared->early_stop.empty()) shared->early_stop = r.what;
    } else {
      shared->run->RequestStop(r.what);
    }
    if (r.process_ending) {
      // Windows ends the process when this returns: finish first.
      shared->cv.wait(lock, [&] { return shared->finished; });
    }
  });
  if (absl::Status s = SetupLogging(cmd.config.log_level, cmd.config.log_file);
      !s.ok()) {
    spdlog::critical("{}", std::string(s.message()));
    return 2;
  }
  absl::StatusOr<std::unique_ptr<AgentRun>> run = AgentRun::Start(cmd);
  if (!run.ok()) {
    spdlog::critical("cannot start: {}", run.status().ToString());
    return 1;
  }
  {
    std::lock_guard<std::mutex> lock(shared->mu);
    shared->run = run->get();
    if (!shared->early_stop.empty()) (*run)->RequestStop(shared->early_stop);
  }
  const bool hurried = (*run)->Wait();
  {
    std::lock_guard<std::mutex> lock(shared->mu);
    shared->run = nullptr;
    shared->finished = true;
  }
  shared->cv.notify_all();
  if (hurried) std::_Exit(3);  // Stops in progress must not hold the exit.
  return 0;
}

namespace {

absl::StatusOr<AgentCommandLine> ParseFlags(
    const std::vector<std::string>& flags) {
  std::vector<std::string> args = {"labtrace-agent"};
  args.insert(args.end(), flags.begin(), flags.end());
  std::vector<const char*> argv = console::ArgvPointers(args);
  return ParseAgentCommandLine(static_cast<int>(args.size()), argv.data());
}

int ServiceRun(const std::vector<std::string>& flags, std::ostream& err) {
  absl::StatusOr<AgentCommandLine> cmd = ParseFlags(flags);
  if (!cmd.ok()) {
    service_host::LogEvent(kServiceName, true,
                           absl::StrCat("bad service command line: ",
                                        cmd.status().message()));
    err << "labtrace-agent service run: " << cmd.status().message() << "\n";
    return 2;
  }
  if (cmd->config.log_file.empty()) {
    cmd->config.log_file = cmd->config.data_dir / "agent.log";
  }
  std::unique_ptr<AgentRun> run;
  service_host::Callbacks callbacks;
  callbacks.start = [&](std::string* error) {
    if (absl::Status s =
            SetupLogging(cmd->config.log_level, cmd->config.log_file);
        !s.ok()) {
      *error = std::string(s.message());
      return false;
    }
    spdlog::info("labtrace-agent {} starting as the Windows service {}",
                 LABTRACE_VERSION, kServiceName);
    absl::StatusOr<std::unique_ptr<AgentRun>> started = AgentRun::Start(*cmd);
    if (!started.ok()) {
      *error = started.status().ToString();
      spdlog::critical("cannot start: {}", *error);
      return false;
    }
    run = std::move(*started);
    return true;
  };
  callbacks.request_stop = [&](const std::string& why) {
    if (run != nullptr) run->RequestStop(why);
  };
  callbacks.wait = [&] { return run->Wait() ? 3 : 0; };
  std::string error;
  if (!service_host::Run(kServiceName, callbacks, &error)) {
    err << "labtrace-agent service run: " << error << "\n";
    return 1;
  }
  return 0;
}

int ServiceInstall(const std::vector<std::string>& flags, std::ostream& out,
                   std::ostream& err) {
  // Check the flags now: a mistake shows here, not as a service that fails
  // to start at the next boot.
  absl::StatusOr<AgentCommandLine> cmd = ParseFlags(flags);
  if (!cmd.ok()) {
    err << "labtrace-agent service install: " << cmd.status().message()
        << "\n";
    return 2;
  }
  if (!cmd->print_and_exit.empty()) {
    err << "labtrace-agent service install: --help and --version are not "
           "service flags\n";
    return 2;
  }
  service_host::InstallOptions opts;
  opts.name = kServiceName;
  opts.display_name = "labtrace agent";
  opts.description =
      "labtrace: named trace operations (WPR/ETW) started and stopped "
      "remotely over gRPC and REST; keeps each trace file as an artifact.";
  opts.arguments = {"service", "run"};
  opts.arguments.insert(opts.arguments.end(), flags.begin(), flags.end());
  // At shutdown every active trace is stopped and kept; wpr -stop can take
  // as long as its stop timeout.
  opts.preshutdown_timeout = std::chrono::seconds(
      absl::ToInt64Seconds(cmd->config.wpr.stop_timeout) + 60);
  std::string error;
  if (!service_host::Install(opts, &error)) {
    err << "labtrace-agent service install: " << error << "\n";
    return 1;
  }
  out << "installed the Windows service " << kServiceName
      << " (starts at boot; runs: labtrace-agent "
      << absl::StrJoin(opts.arguments, " ") << ")\n"
      << "data dir: " << PathToUtf8(cmd->config.data_dir) << "\n"
      << "config:   "
      << (cmd->config_path.empty() ? std::string("none (defaults and flags)")
                                   : PathToUtf8(cmd->config_path))
      << "\n"
      << "log:      "
      << PathToUtf8(cmd->config.log_file.empty()
                        ? cmd->config.data_dir / "agent.log"
                        : cmd->config.log_file)
      << "\n"
      << "start it now: sc start " << kServiceName << "\n";
  return 0;
}

int ServiceUninstall(const std::vector<std::string>& flags, std::ostream& out,
                     std::ostream& err) {
  if (!flags.empty()) {
    err << "labtrace-agent service uninstall takes no arguments\n";
    return 2;
  }
  std::string error;
  // Generous: stopping the service stops (and keeps) every active trace.
  const bool ok = service_host::Uninstall(
      kServiceName, std::chrono::minutes(15),
      [&out](const std::string& line) { out << line << "\n" << std::flush; },
      &error);
  if (!ok) {
    err << "labtrace-agent service uninstall: " << error << "\n";
    return 1;
  }
  return 0;
}

}  // namespace

int RunServiceCommand(const std::vector<std::string>& args, std::ostream& out,
                      std::ostream& err) {
  const std::string usage =
      "usage: labtrace-agent service install [agent flags]\n"
      "       labtrace-agent service uninstall\n"
      "       labtrace-agent service run [agent flags]   (run by the SCM)\n";
  if (args.empty()) {
    err << usage;
    return 2;
  }
  if (std::string why; !service_host::Supported(&why)) {
    err << "labtrace-agent service: " << why << "\n";
    return 2;
  }
  const std::vector<std::string> rest(args.begin() + 1, args.end());
  if (args[0] == "install") return ServiceInstall(rest, out, err);
  if (args[0] == "uninstall") return ServiceUninstall(rest, out, err);
  if (args[0] == "run") return ServiceRun(rest, err);
  err << "labtrace-agent service: unknown command \"" << args[0] << "\"\n"
      << usage;
  return 2;
}

}  // namespace labtrace::agent
