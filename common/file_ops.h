// File operations whose durability and atomicity depend on the OS: replacing
// a file atomically, flushing a file to disk, renaming durably, free space.
// common/file_util.h wraps them in absl::Status for the rest of the code.
//
// Platform layer: standard library and OS API only (file_ops_posix.cc:
// open/fsync/rename and a directory fsync; file_ops_win.cc: CreateFileW,
// FlushFileBuffers, MoveFileExW with MOVEFILE_WRITE_THROUGH,
// GetDiskFreeSpaceExW, and "\\?\" paths so long paths work).
//
// Every function returns false on failure and puts the operation, the path
// and the OS's own words into *error. Paths are std::filesystem::path; build
// them from UTF-8 with PathFromUtf8 (common/file_util.h).

#ifndef LABTRACE_COMMON_FILE_OPS_H_
#define LABTRACE_COMMON_FILE_OPS_H_

#include <cstdint>
#include <filesystem>
#include <string>
#include <string_view>

namespace labtrace::file_ops {

// Writes `data` to a temporary file beside `path` (a name unique to this
// process and call, so threads never share one), flushes it to stable
// storage and renames it over `path`; then makes the rename durable
// (POSIX: fsync of the directory; Windows: MOVEFILE_WRITE_THROUGH). Readers
// see the old file or the new one, never a mix. On failure the temporary file
// is removed and `path` is left as it was.
bool ReplaceFileAtomically(const std::filesystem::path& path,
                           std::string_view data, std::string* error);

// Flushes the file's data and metadata to stable storage.
bool FlushFile(const std::filesystem::path& path, std::string* error);

// Renames `from` to `to`, replacing `to` if it exists (both on one volume),
// and makes the rename durable.
bool RenameDurably(const std::filesystem::path& from,
                   const std::filesystem::path& to, std::string* error);

// Bytes available to this (unprivileged) user on the volume holding `path`.
bool FreeBytes(const std::filesystem::path& path, std::uint64_t* bytes,
               std::string* error);

// Appends `data` to `path` in one write, creating the file if needed,
// readable and writable by its owner only (POSIX mode 0600). For logs that
// must not be read by every user (the audit log).
bool AppendPrivate(const std::filesystem::path& path, std::string_view data,
                   std::string* error);

// Restricts an existing file to its owner (POSIX: chmod 0600; Windows: no
// change, the data dir's ACL applies). For artifacts, which hold process
// names, paths and stacks.
bool MakePrivate(const std::filesystem::path& path, std::string* error);

// True if every user of the machine may read `path` (POSIX: the "other"
// read bit; Windows: false). Used to warn about keys and configs.
bool IsWorldReadable(const std::filesystem::path& path);

// Creates `dir` and its missing parents.
bool CreateDirectories(const std::filesystem::path& dir, std::string* error);

// The path to hand to the C++ library (std::ifstream, std::filesystem) so
// that it works beyond 260 characters: on Windows the absolute "\\?\" form,
// elsewhere `path` itself.
std::filesystem::path OsPath(const std::filesystem::path& path);

// A name for a temporary file beside `path`: "<path>.tmp.<pid>.<n>", with n
// unique within this process.
std::filesystem::path TempNameBeside(const std::filesystem::path& path);

}  // namespace labtrace::file_ops

#endif  // LABTRACE_COMMON_FILE_OPS_H_
