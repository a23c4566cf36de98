// Windows implementation of common/file_ops.h: CreateFileW + WriteFile +
// FlushFileBuffers, MoveFileExW(MOVEFILE_REPLACE_EXISTING |
// MOVEFILE_WRITE_THROUGH), GetDiskFreeSpaceExW. Paths are passed as absolute
// "\\?\" paths, so they may be longer than MAX_PATH (260) characters.
//
// Replacing a file that another process holds open without FILE_SHARE_DELETE
// (a virus scanner, an indexer, an editor) fails with a sharing violation or
// access denied for as long as it holds it; such failures are retried for
// about a second before they are reported.

#include <windows.h>

#include <algorithm>
#include <chrono>
#include <thread>

#include "common/file_ops.h"

namespace labtrace::file_ops {
namespace {

std::string Utf8(const std::filesystem::path& p) {
  const std::u8string u = p.u8string();
  return std::string(u.begin(), u.end());
}

std::string OsError(DWORD code) {
  wchar_t* text = nullptr;
  const DWORD n = FormatMessageW(
      FORMAT_MESSAGE_ALLOCATE_BUFFER | FORMAT_MESSAGE_FROM_SYSTEM |
          FORMAT_MESSAGE_IGNORE_INSERTS,
      nullptr, code, 0, reinterpret_cast<wchar_t*>(&text), 0, nullptr);
  std::string out;
  if (n > 0 && text != nullptr) {
    const int len = WideCharToMultiByte(CP_UTF8, 0, text, static_cast<int>(n),
                                        nullptr, 0, nullptr, nullptr);
    out.resize(static_cast<std::size_t>(len));
    WideCharToMultiByte(CP_UTF8, 0, text, static_cast<int>(n), out.data(), len,
                        nullptr, nullptr);
    while (!out.empty() && (out.back() == '\n' || out.back() == '\r' ||
                            out.back() == ' ' || out.back() == '.')) {
      out.pop_back();
    }
  }
  if (text != nullptr) LocalFree(text);
  if (out.empty()) out = "Windows error";
  return out + " (error " + std::to_string(code) + ")";
}

bool Fail(std::string* error, const std::string& what,
          const std::filesystem::path& p, DWORD code) {
  *error = what + " " + Utf8(p) + ": " + OsError(code);
  return false;
}

// An absolute "\\?\" (or "\\?\UNC\") path: no MAX_PATH limit, no
// normalisation by the OS (so it is normalised here first).
std::wstring ExtendedPath(const std::filesystem::path& p) {
  std::error_code ec;
  std::filesystem::path abs = std::filesystem::absolute(p, ec);
  if (ec) abs = p;
  std::wstring w = abs.lexically_normal().native();
  std::replace(w.begin(), w.end(), L'/', L'\\');
  if (w.rfind(L"\\\\?\\", 0) == 0) return w;
  if (w.rfind(L"\\\\", 0) == 0) return L"\\\\?\\UNC\\" + w.substr(2);
  if (w.size() >= 2 && w[1] == L':') return L"\\\\?\\" + w;
  return w;
}

bool Transient(DWORD code) {
  return code == ERROR_SHARING_VIOLATION || code == ERROR_ACCESS_DENIED ||
         code == ERROR_LOCK_VIOLATION;
}

// MoveFileExW with write-through, retried while another process briefly
// holds the target open.
DWORD MoveReplacing(const std::wstring& from, const std::wstring& to) {
  DWORD code = ERROR_SUCCESS;
  for (int attempt = 0; attempt < 50; ++attempt) {
    if (MoveFileExW(from.c_str(), to.c_str(),
                    MOVEFILE_REPLACE_EXISTING | MOVEFILE_WRITE_THROUGH)) {
      return ERROR_SUCCESS;
    }
    code = GetLastError();
    if (!Transient(code)) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return code;
}

}  // namespace

bool ReplaceFileAtomically(const std::filesystem::path& path,
                           std::string_view data, std::string* error) {
  const std::filesystem::path tmp = TempNameBeside(path);
  const std::wstring wtmp = ExtendedPath(tmp);
  HANDLE h = CreateFileW(wtmp.c_str(), GENERIC_WRITE, 0, nullptr, CREATE_NEW,
                         FILE_ATTRIBUTE_NORMAL, nullptr);
  if (h == INVALID_HANDLE_VALUE) {
    return Fail(error, "cannot create", tmp, GetLastError());
  }
  std::size_t done = 0;
  while (done < data.size()) {
    const DWORD want = static_cast<DWORD>(
        std::min<std::size_t>(data.size() - done, 1u << 30));
    DWORD wrote = 0;
    if (!WriteFile(h, data.data() + done, want, &wrote, nullptr)) {
      const DWORD code = GetLastError();
      CloseHandle(h);
      DeleteFileW(wtmp.c_str());
      return Fail(error, "cannot write", tmp, code);
    }
    done += wrote;
  }
  if (!FlushFileBuffers(h)) {
    const DWORD code = GetLastError();
    CloseHandle(h);
    DeleteFileW(wtmp.c_str());
    return Fail(error, "cannot flush", tmp, code);
  }
  CloseHandle(h);
  const DWORD code = MoveReplacing(wtmp, ExtendedPath(path));
  if (code != ERROR_SUCCESS) {
    DeleteFileW(wtmp.c_str());
    return Fail(error, "cannot rename into", path, code);
  }
  return true;
}

bool FlushFile(const std::filesystem::path& path, std::string* error) {
  HANDLE h = CreateFileW(ExtendedPath(path).c_str(), GENERIC_WRITE,
                         FILE_SHARE_READ | FILE_SHARE_WRITE | FILE_SHARE_DELETE,
                         nullptr, OPEN_EXISTING, FILE_ATTRIBUTE_NORMAL, nullptr);
  if (h == INVALID_HANDLE_VALUE) {
    return Fail(error, "cannot open", path, GetLastError());
  }
  const BOOL ok = FlushFileBuffers(h);
  const DWORD code = GetLastError();
  CloseHandle(h);
  if (!ok) return Fail(error, "cannot flush", path, code);
  return true;
}

bool RenameDurably(const std::filesystem::path& from,
                   const std::filesystem::path& to, std::string* error) {
  const DWORD code = MoveReplacing(ExtendedPath(from), ExtendedPath(to));
  if (code != ERROR_SUCCESS) {
    *error = "cannot rename " + Utf8(from) + " to " + Utf8(to) + ": " +
             OsError(code);
    return false;
  }
  return true;
}

bool FreeBytes(const std::filesystem::path& path, std::uint64_t* bytes,
               std::string* error) {
  std::error_code ec;
  std::filesystem::path dir = path;
  if (!std::filesystem::is_directory(path, ec)) dir = path.parent_path();
  std::wstring w = ExtendedPath(dir);
  if (!w.empty() && w.back() != L'\\') w.push_back(L'\\');
  ULARGE_INTEGER available{};
  if (!GetDiskFreeSpaceExW(w.c_str(), &available, nullptr, nullptr)) {
    return Fail(error, "cannot read free space of", path, GetLastError());
  }
  *bytes = available.QuadPart;
  return true;
}

bool CreateDirectories(const std::filesystem::path& dir, std::string* error) {
  std::error_code ec;
  std::filesystem::create_directories(std::filesystem::path(ExtendedPath(dir)),
                                      ec);
  if (ec) {
    *error = "cannot create directory " + Utf8(dir) + ": " + ec.message();
    return false;
  }
  return true;
}

std::filesystem::path OsPath(const std::filesystem::path& path) {
  return std::filesystem::path(ExtendedPath(path));
}

bool AppendPrivate(const std::filesystem::path& path, std::string_view data,
                   std::string* error) {
  // FILE_APPEND_DATA without FILE_WRITE_DATA: every write goes to the end.
  HANDLE h = CreateFileW(ExtendedPath(path).c_str(), FILE_APPEND_DATA,
                         FILE_SHARE_READ | FILE_SHARE_WRITE, nullptr,
                         OPEN_ALWAYS, FILE_ATTRIBUTE_NORMAL, nullptr);
  if (h == INVALID_HANDLE_VALUE) {
    return Fail(error, "cannot open", path, GetLastError());
  }
  std::size_t done = 0;
  while (done < data.size()) {
    DWORD wrote = 0;
    const DWORD want = static_cast<DWORD>(
        std::min<std::size_t>(data.size() - done, 1u << 30));
    if (!WriteFile(h, data.data() + done, want, &wrote, nullptr)) {
      const DWORD code = GetLastError();
      CloseHandle(h);
      return Fail(error, "cannot append to", path, code);
    }
    done += wrote;
  }
  CloseHandle(h);
  return true;
}

bool MakePrivate(const std::filesystem::path&, std::string*) { return true; }

bool IsWorldReadable(const std::filesystem::path&) { return false; }

}  // namespace labtrace::file_ops
