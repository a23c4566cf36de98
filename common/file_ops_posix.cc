// POSIX implementation of common/file_ops.h.

#include <fcntl.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "common/file_ops.h"

namespace labtrace::file_ops {
namespace {

bool Fail(std::string* error, const char* what,
          const std::filesystem::path& p, int err) {
  *error = std::string(what) + " " + p.string() + ": " + std::strerror(err);
  return false;
}

// fsync of the directory holding `path`: makes a rename or create in it
// durable. Best effort (some file systems refuse to open directories).
void SyncParentDirectory(const std::filesystem::path& path) {
  std::filesystem::path dir = path.parent_path();
  if (dir.empty()) dir = ".";
  int dfd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dfd >= 0) {
    ::fsync(dfd);
    ::close(dfd);
  }
}

// Writes all of `data`; 0 or the errno of the write that failed.
int WriteAll(int fd, std::string_view data) {
  std::size_t done = 0;
  while (done < data.size()) {
    ssize_t n = ::write(fd, data.data() + done, data.size() - done);
    if (n < 0) {
      if (errno == EINTR) continue;
      return errno;
    }
    done += static_cast<std::size_t>(n);
  }
  return 0;
}

}  // namespace

bool ReplaceFileAtomically(const std::filesystem::path& path,
                           std::string_view data, std::string* error) {
  const std::filesystem::path tmp = TempNameBeside(path);
  int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
  if (fd < 0) return Fail(error, "cannot create", tmp, errno);
  if (const int err = WriteAll(fd, data); err != 0) {
    ::close(fd);
    ::unlink(tmp.c_str());
    return Fail(error, "cannot write", tmp, err);
  }
  if (::fsync(fd) != 0) {
    const int err = errno;
    ::close(fd);
    ::unlink(tmp.c_str());
    return Fail(error, "cannot fsync", tmp, err);
  }
  if (::close(fd) != 0) {
    const int err = errno;
    ::unlink(tmp.c_str());
    return Fail(error, "cannot close", tmp, err);
  }
  if (::rename(tmp.c_str(), path.c_str()) != 0) {
    const int err = errno;
    ::unlink(tmp.c_str());
    return Fail(error, "cannot rename into", path, err);
  }
  SyncParentDirectory(path);
  return true;
}

bool FlushFile(const std::filesystem::path& path, std::string* error) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return Fail(error, "cannot open", path, errno);
  const int rc = ::fsync(fd);
  const int err = errno;
  ::close(fd);
  if (rc != 0) return Fail(error, "cannot fsync", path, err);
  return true;
}

bool RenameDurably(const std::filesystem::path& from,
                   const std::filesystem::path& to, std::string* error) {
  if (::rename(from.c_str(), to.c_str()) != 0) {
    *error = "cannot rename " + from.string() + " to " + to.string() + ": " +
             std::strerror(errno);
    return false;
  }
  SyncParentDirectory(to);
  if (from.parent_path() != to.parent_path()) SyncParentDirectory(from);
  return true;
}

bool FreeBytes(const std::filesystem::path& path, std::uint64_t* bytes,
               std::string* error) {
  struct statvfs st;
  if (::statvfs(path.c_str(), &st) != 0) {
    return Fail(error, "cannot read free space of", path, errno);
  }
  *bytes = static_cast<std::uint64_t>(st.f_bavail) * st.f_frsize;
  return true;
}

bool CreateDirectories(const std::filesystem::path& dir, std::string* error) {
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (ec) {
    *error = "cannot create directory " + dir.string() + ": " + ec.message();
    return false;
  }
  return true;
}

std::filesystem::path OsPath(const std::filesystem::path& path) {
  return path;
}

bool AppendPrivate(const std::filesystem::path& path, std::string_view data,
                   std::string* error) {
  int fd = ::open(path.c_str(), O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0600);
  if (fd < 0) return Fail(error, "cannot open", path, errno);
  if (const int err = WriteAll(fd, data); err != 0) {
    ::close(fd);
    return Fail(error, "cannot append to", path, err);
  }
  if (::close(fd) != 0) return Fail(error, "cannot close", path, errno);
  return true;
}

bool MakePrivate(const std::filesystem::path& path, std::string* error) {
  if (::chmod(path.c_str(), 0600) != 0) {
    return Fail(error, "cannot chmod", path, errno);
  }
  return true;
}

bool IsWorldReadable(const std::filesystem::path& path) {
  struct stat st;
  return ::stat(path.c_str(), &st) == 0 && (st.st_mode & S_IROTH) != 0;
}

}  // namespace labtrace::file_ops
