// POSIX implementation of common/service_host.h: there is no SCM; the Linux
// agent runs as a systemd unit (deploy/labtrace-agent.service).

#include "common/service_host.h"

namespace labtrace::service_host {
namespace {

constexpr char kNotHere[] =
    "Windows services exist only on Windows; on Linux run the agent with "
    "systemd (deploy/labtrace-agent.service)";

}  // namespace

bool Supported(std::string* why) {
  *why = kNotHere;
  return false;
}

bool Install(const InstallOptions&, std::string* error) {
  *error = kNotHere;
  return false;
}

bool Uninstall(const std::string&, std::chrono::seconds,
               const std::function<void(const std::string&)>&,
               std::string* error) {
  *error = kNotHere;
  return false;
}

bool Run(const std::string&, const Callbacks&, std::string* error) {
  *error = kNotHere;
  return false;
}

void LogEvent(const std::string&, bool, const std::string&) {}

}  // namespace labtrace::service_host
