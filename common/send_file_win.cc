// Windows implementation of common/send_file.h: no zero-copy path (TransmitFile
// needs overlapped sockets the HTTP server does not use); files are read with
// positioned ReadFile and written by the caller.

#include <windows.h>

#include <utility>

#include "common/send_file.h"

namespace labtrace::send_file {

bool Supported() { return false; }

File::~File() {
  if (handle_ != nullptr) CloseHandle(handle_);
}

File::File(File&& other) noexcept
    : fd_(std::exchange(other.fd_, -1)),
      handle_(std::exchange(other.handle_, nullptr)) {}

File& File::operator=(File&& other) noexcept {
  if (this != &other) {
    if (handle_ != nullptr) CloseHandle(handle_);
    fd_ = std::exchange(other.fd_, -1);
    handle_ = std::exchange(other.handle_, nullptr);
  }
  return *this;
}

void File::Close() {
  if (handle_ != nullptr) CloseHandle(handle_);
  handle_ = nullptr;
  fd_ = -1;
}

bool File::Open(const std::filesystem::path& path, std::string* error) {
  Close();
  // FILE_SHARE_DELETE: an artifact may be deleted while it is downloaded.
  HANDLE h = CreateFileW(path.c_str(), GENERIC_READ,
                         FILE_SHARE_READ | FILE_SHARE_WRITE | FILE_SHARE_DELETE,
                         nullptr, OPEN_EXISTING, FILE_FLAG_SEQUENTIAL_SCAN,
                         nullptr);
  if (h == INVALID_HANDLE_VALUE) {
    *error = "cannot open the file (error " + std::to_string(GetLastError()) +
             ")";
    return false;
  }
  handle_ = h;
  fd_ = 0;  // Marks "open".
  return true;
}

std::int64_t File::ReadAt(std::uint64_t offset, char* out,
                          std::size_t n) const {
  OVERLAPPED at{};
  at.Offset = static_cast<DWORD>(offset & 0xffffffffu);
  at.OffsetHigh = static_cast<DWORD>(offset >> 32);
  DWORD got = 0;
  const DWORD want = static_cast<DWORD>(n > (1u << 30) ? (1u << 30) : n);
  if (!ReadFile(handle_, out, want, &got, &at)) {
    return GetLastError() == ERROR_HANDLE_EOF ? 0 : -1;
  }
  return static_cast<std::int64_t>(got);
}

Result SendChunk(std::intptr_t, const File&, std::uint64_t*, std::size_t,
                 std::size_t* sent, std::string* error) {
  *sent = 0;
  *error = "sendfile is not available on Windows";
  return Result::kError;
}

}  // namespace labtrace::send_file
