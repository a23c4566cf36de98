// File helpers shared by agent and controller: atomic replacement of small
// files (journal, metadata), streaming SHA-256, free space.
//
// All functions report errors as absl::Status with the path and the OS's
// words; none throws.

#ifndef LABTRACE_COMMON_FILE_UTIL_H_
#define LABTRACE_COMMON_FILE_UTIL_H_

#include <cstdint>
#include <filesystem>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace labtrace {

// Writes `contents` to `path` so that readers see either the old file or the
// new one, never a mix: write `path.tmp.<pid>`, fsync, rename, fsync the
// directory.
absl::Status WriteFileAtomically(const std::filesystem::path& path,
                                 absl::string_view contents);

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
