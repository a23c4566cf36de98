// Zero-copy sends of file bytes to a socket: the kernel copies from the page
// cache straight into the socket (Linux sendfile), so serving an artifact
// costs no user-space copy. Where there is no such call (Windows here), or
// for TLS, callers read and write instead; Supported() tells which.
//
// Platform layer: standard library and OS API only.

#ifndef LABTRACE_COMMON_SEND_FILE_H_
#define LABTRACE_COMMON_SEND_FILE_H_

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <string>

namespace labtrace::send_file {

// True where SendChunk works.
bool Supported();

// An open file for reading; closed on destruction. Move-only.
class File {
 public:
  File() = default;
  ~File();
  File(File&& other) noexcept;
  File& operator=(File&& other) noexcept;
  File(const File&) = delete;
  File& operator=(const File&) = delete;

  // False and *error if the file cannot be opened.
  // A file already open is closed first.
  bool Open(const std::filesystem::path& path, std::string* error);
  void Close();
  bool is_open() const { return fd_ >= 0; }
  // Reads up to n bytes at offset into out (pread); -1 on error.
  std::int64_t ReadAt(std::uint64_t offset, char* out, std::size_t n) const;
  int fd() const { return fd_; }

 private:
  int fd_ = -1;
#ifdef _WIN32
  void* handle_ = nullptr;
#endif
};

enum class Result { kSent, kWouldBlock, kError };

// Sends up to `n` bytes of `file` from `*offset` to the (non-blocking)
// socket; advances *offset by what was sent and sets *sent. kWouldBlock:
// the socket is full, wait until it is writable. kError: *error says why.
Result SendChunk(std::intptr_t socket, const File& file, std::uint64_t* offset,
                 std::size_t n, std::size_t* sent, std::string* error);

}  // namespace labtrace::send_file

#endif  // LABTRACE_COMMON_SEND_FILE_H_
