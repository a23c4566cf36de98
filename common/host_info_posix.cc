// POSIX implementation of common/host_info.h.

#include <sys/utsname.h>
#include <unistd.h>

#include <fstream>
#include <string>

#include "common/host_info.h"

namespace labtrace {

std::string HostName() {
  char buf[256] = {};
  if (::gethostname(buf, sizeof(buf) - 1) != 0 || buf[0] == '\0') {
    return "unknown";
  }
  return buf;
}

std::string OsDescription() {
  struct utsname u;
  if (::uname(&u) != 0) return "unknown";
  return std::string(u.sysname) + " " + u.release + " " + u.machine;
}

std::uint64_t ResidentBytes() {
  std::ifstream in("/proc/self/statm");
  std::uint64_t size = 0, resident = 0;
  if (!(in >> size >> resident)) return 0;
  return resident * static_cast<std::uint64_t>(::sysconf(_SC_PAGESIZE));
}

std::int64_t CurrentPid() { return ::getpid(); }

}  // namespace labtrace
