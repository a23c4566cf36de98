// POSIX implementation of common/send_file.h (Linux sendfile; pread).

#include <fcntl.h>
#include <unistd.h>
#ifdef __linux__
#include <sys/sendfile.h>
#endif

#include <cerrno>
#include <cstring>
#include <utility>

#include "common/send_file.h"

namespace labtrace::send_file {

bool Supported() {
#ifdef __linux__
  return true;
#else
  return false;
#endif
}

File::~File() {
  if (fd_ >= 0) ::close(fd_);
}

File::File(File&& other) noexcept : fd_(std::exchange(other.fd_, -1)) {}

File& File::operator=(File&& other) noexcept {
  if (this != &other) {
    if (fd_ >= 0) ::close(fd_);
    fd_ = std::exchange(other.fd_, -1);
  }
  return *this;
}

void File::Close() {
  if (fd_ >= 0) ::close(fd_);
  fd_ = -1;
}

bool File::Open(const std::filesystem::path& path, std::string* error) {
  Close();
  fd_ = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd_ < 0) {
    *error = "cannot open " + path.string() + ": " + std::strerror(errno);
    return false;
  }
  return true;
}

std::int64_t File::ReadAt(std::uint64_t offset, char* out,
                          std::size_t n) const {
  for (;;) {
    const ssize_t r = ::pread(fd_, out, n, static_cast<off_t>(offset));
    if (r < 0 && errno == EINTR) continue;
    return r;
  }
}

Result SendChunk(std::intptr_t socket, const File& file, std::uint64_t* offset,
                 std::size_t n, std::size_t* sent, std::string* error) {
  *sent = 0;
#ifdef __linux__
  for (;;) {
    off_t off = static_cast<off_t>(*offset);
    const ssize_t r =
        ::sendfile(static_cast<int>(socket), file.fd(), &off, n);
    if (r > 0) {
      *offset = static_cast<std::uint64_t>(off);
      *sent = static_cast<std::size_t>(r);
      return Result::kSent;
    }
    if (r == 0) {
      *error = "the file ended early (truncated while being sent?)";
      return Result::kError;
    }
    if (errno == EINTR) continue;
    if (errno == EAGAIN || errno == EWOULDBLOCK) return Result::kWouldBlock;
    *error = std::string("sendfile: ") + std::strerror(errno);
    return Result::kError;
  }
#else
  (void)socket;
  (void)file;
  (void)offset;
  (void)n;
  *error = "sendfile is not available here";
  return Result::kError;
#endif
}

}  // namespace labtrace::send_file
