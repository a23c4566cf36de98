// Running a program as an operating-system service: on Windows, a service of
// the Service Control Manager (SCM), installed, started and stopped like any
// other (`sc start labtrace-agent`, services.msc). On Linux the agent is a
// systemd unit (deploy/labtrace-agent.service) and these functions only
// report that.
//
// Platform layer: standard library and OS API only (service_host_win.cc:
// CreateServiceW, StartServiceCtrlDispatcherW, RegisterServiceCtrlHandlerExW,
// SetServiceStatus, ReportEventW; service_host_posix.cc: errors).
//
// What the host promises a Windows service:
//  - Start: SERVICE_START_PENDING while Callbacks::start runs; a start that
//    fails is reported to the SCM as stopped with a service-specific exit
//    code, and its reason goes to the Application event log.
//  - Stop (sc stop, services.msc) and system shutdown (PRESHUTDOWN, which
//    gives the service up to InstallOptions::preshutdown_timeout): the host
//    calls Callbacks::request_stop and reports SERVICE_STOP_PENDING with a
//    wait hint and an advancing checkpoint every few seconds until
//    Callbacks::wait returns, so the SCM waits for a stop that takes minutes
//    (a WPR stop merging a large trace) instead of declaring the service hung.
//
// Usage (agent/daemon):
//   service_host::Callbacks cb;
//   cb.start = [&](std::string* error) { ...; return true; };
//   cb.request_stop = [&](const std::string& why) { server->RequestStop(); };
//   cb.wait = [&] { server->Wait(); return 0; };
//   if (!service_host::Run("labtrace-agent", cb, &error)) ...

#ifndef LABTRACE_COMMON_SERVICE_HOST_H_
#define LABTRACE_COMMON_SERVICE_HOST_H_

#include <chrono>
#include <functional>
#include <string>
#include <vector>

namespace labtrace::service_host {

// True where services are supported (Windows); otherwise false and *why.
bool Supported(std::string* why);

struct InstallOptions {
  std::string name;          // Service name: "labtrace-agent".
  std::string display_name;  // Shown by services.msc.
  std::string description;
  // Arguments after the executable (this program) on the service's command
  // line, e.g. {"service", "run", "--config", "C:\\ProgramData\\..."}.
  std::vector<std::string> arguments;
  // How long the SCM waits for the service at system shutdown.
  std::chrono::seconds preshutdown_timeout{600};
};

// Registers this executable as an automatically started service running as
// LocalSystem, restarted by the SCM if it fails (5 s, 5 s, 60 s). If the
// service exists, its configuration is updated instead. Needs administrator
// rights.
bool Install(const InstallOptions& options, std::string* error);

// Stops the service if it runs (waiting up to `stop_timeout` for it to stop)
// and deletes it. `progress` (may be empty) is told what happens.
bool Uninstall(const std::string& name, std::chrono::seconds stop_timeout,
               const std::function<void(const std::string&)>& progress,
               std::string* error);

struct Callbacks {
  // Starts the work. False with *error fails the service's start.
  std::function<bool(std::string* error)> start;
  // Asks the work to stop (`why`: "stop", "system shutdown"). Called on an
  // SCM thread; must return promptly.
  std::function<void(const std::string& why)> request_stop;
  // Blocks until the work has stopped, after a successful start; returns the
  // exit code for the SCM (0: stopped cleanly).
  std::function<int()> wait;
};

// Connects this process to the SCM and runs the service until it stops.
// False with *error if the process was not started by the SCM (run from a
// console) or the connection failed.
bool Run(const std::string& name, const Callbacks& callbacks,
         std::string* error);

// Writes a message to the system log (the Windows Application event log,
// source `name`); does nothing elsewhere.
void LogEvent(const std::string& name, bool is_error,
              const std::string& message);

}  // namespace labtrace::service_host

#endif  // LABTRACE_COMMON_SERVICE_HOST_H_
