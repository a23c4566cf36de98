// Parts of common/file_ops.h that need no OS API.

#include <atomic>

#include "common/file_ops.h"
#include "common/host_info.h"

namespace labtrace::file_ops {

std::filesystem::path TempNameBeside(const std::filesystem::path& path) {
  static std::atomic<std::uint64_t> counter{0};
  std::filesystem::path tmp = path;
  tmp += ".tmp." + std::to_string(CurrentPid()) + "." +
         std::to_string(++counter);
  return tmp;
}

}  // namespace labtrace::file_ops
