// File helpers shared by agent and controller: atomic replacement of small
// files (journal, metadata), durable renames, streaming SHA-256, free space,
// and UTF-8 <-> path conversion.
//
// All functions report errors as absl::Status with the path and the OS's
// words; none throws. Portable: the OS-specific parts are in
// common/file_ops.h.
//
// Paths and UTF-8: every string in labtrace (flags, config, messages, the
// API) is UTF-8. On Windows a std::filesystem::path built from a std::string,
// or turned back with .string(), goes through the ANSI code page and loses
// (or throws on) characters outside it, so convert with PathFromUtf8 and
// PathToUtf8 instead.

#ifndef LABTRACE_COMMON_FILE_UTIL_H_
#define LABTRACE_COMMON_FILE_UTIL_H_

#include <cstdint>
#include <filesystem>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace labtrace {

// A path from UTF-8 text, and back (identity on POSIX).
std::filesystem::path PathFromUtf8(absl::string_view utf8);
std::string PathToUtf8(const std::filesystem::path& path);

// Writes `contents` to `path` so that readers see either the old file or the
// new one, never a mix: write a temp file unique to this call, flush it to
// disk, rename it over `path`, make the rename durable.
absl::Status WriteFileAtomically(const std::filesystem::path& path,
                                 absl::string_view contents);

// Flushes a finished file to disk, then renames it to `to` durably: after
// a crash or power loss `to` is either absent or the whole file.
absl::Status CommitFile(const std::filesystem::path& from,
                        const std::filesystem::path& to);

// Flushes a file's data to disk (fsync / FlushFileBuffers).
absl::Status FlushFile(const std::filesystem::path& path);

// Reads a whole (small) file.
absl::StatusOr<std::string> ReadFile(const std::filesystem::path& path);

// Lowercase hex SHA-256 of a file's bytes, read in 1 MiB blocks.
absl::StatusOr<std::string> Sha256File(const std::filesystem::path& path);

// Lowercase hex SHA-256 of a byte string.
std::string Sha256Hex(absl::string_view data);

// Incremental SHA-256 (for data that arrives in pieces, e.g. downloads).
class Sha256 {
 public:
  Sha256();
  ~Sha256();
  Sha256(const Sha256&) = delete;
  Sha256& operator=(const Sha256&) = delete;
  void Update(absl::string_view data);
  // Lowercase hex; the object must not be updated afterwards.
  std::string HexDigest();

 private:
  void* ctx_;  // EVP_MD_CTX, kept out of this header.
};

// True for a plain file name a peer may choose: [A-Za-z0-9][A-Za-z0-9._-]*,
// at most 200 characters, never "." or "..". Used before a name from the
// network becomes part of a local path.
bool IsSafeFileName(absl::string_view name);

// Bytes available to an unprivileged user on the volume holding `path`.
absl::StatusOr<std::uint64_t> FreeBytes(const std::filesystem::path& path);

// Creates `dir` and its parents if missing.
absl::Status EnsureDirectory(const std::filesystem::path& dir);

// Size of a file, or an error naming the path.
absl::StatusOr<std::uint64_t> FileSize(const std::filesystem::path& path);

// "1.5 GiB", "320 KiB", "17 B".
std::string HumanBytes(std::uint64_t bytes);

}  // namespace labtrace

#endif  // LABTRACE_COMMON_FILE_UTIL_H_
