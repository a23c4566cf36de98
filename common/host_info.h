// Facts about the machine the process runs on, for GetAgentInfo and artifact
// metadata. Platform layer: standard library and OS API only.

#ifndef LABTRACE_COMMON_HOST_INFO_H_
#define LABTRACE_COMMON_HOST_INFO_H_

#include <cstdint>
#include <string>

namespace labtrace {

// The machine's host name ("vm3"), or "unknown".
std::string HostName();

// Operating system, release and architecture: "Linux 6.1.0-18-amd64 x86_64",
// "Windows 10.0.22631 x64".
std::string OsDescription();

// Resident memory of this process in bytes, or 0 if unknown.
std::uint64_t ResidentBytes();

// The current process id.
std::int64_t CurrentPid();

}  // namespace labtrace

#endif  // LABTRACE_COMMON_HOST_INFO_H_
