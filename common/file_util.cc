// Portable part of common/file_util.h; the OS-specific operations are in
// common/file_ops_{posix,win}.cc.

#include "common/file_util.h"

#include <openssl/evp.h>

#include <fstream>
#include <memory>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "common/file_ops.h"

namespace labtrace {
namespace {

struct EvpDeleter {
  void operator()(EVP_MD_CTX* ctx) const { EVP_MD_CTX_free(ctx); }
};

std::string ToHex(const unsigned char* d, unsigned int n) {
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out(n * 2, '0');
  for (unsigned int i = 0; i < n; ++i) {
    out[2 * i] = kHex[d[i] >> 4];
    out[2 * i + 1] = kHex[d[i] & 0xf];
  }
  return out;
}

}  // namespace

std::filesystem::path PathFromUtf8(absl::string_view utf8) {
  return std::filesystem::path(std::u8string(utf8.begin(), utf8.end()));
}

std::string PathToUtf8(const std::filesystem::path& path) {
  const std::u8string u = path.u8string();
  return std::string(u.begin(), u.end());
}

absl::Status WriteFileAtomically(const std::filesystem::path& path,
                                 absl::string_view contents) {
  std::string error;
  if (!file_ops::ReplaceFileAtomically(
          path, std::string_view(contents.data(), contents.size()), &error)) {
    return absl::InternalError(error);
  }
  return absl::OkStatus();
}

absl::Status FlushFile(const std::filesystem::path& path) {
  std::string error;
  if (!file_ops::FlushFile(path, &error)) return absl::InternalError(error);
  return absl::OkStatus();
}

absl::Status CommitFile(const std::filesystem::path& from,
                        const std::filesystem::path& to) {
  std::string error;
  if (!file_ops::FlushFile(from, &error) ||
      !file_ops::RenameDurably(from, to, &error)) {
    return absl::InternalError(error);
  }
  return absl::OkStatus();
}

absl::StatusOr<std::string> ReadFile(const std::filesystem::path& path) {
  std::ifstream in(file_ops::OsPath(path), std::ios::binary);
  if (!in) {
    std::error_code ec;
    const bool exists = std::filesystem::exists(path, ec);
    return exists ? absl::PermissionDeniedError(absl::StrCat(
                        "cannot open ", PathToUtf8(path), " for reading"))
                  : absl::NotFoundError(absl::StrCat(
                        "cannot open ", PathToUtf8(path), ": no such file"));
  }
  std::string data((std::istreambuf_iterator<char>(in)),
                   std::istreambuf_iterator<char>());
  if (in.bad()) {
    return absl::InternalError(
        absl::StrCat("cannot read ", PathToUtf8(path), ": I/O error"));
  }
  return data;
}

absl::StatusOr<std::string> Sha256File(const std::filesystem::path& path) {
  std::ifstream in(file_ops::OsPath(path), std::ios::binary);
  if (!in) {
    return absl::NotFoundError(
        absl::StrCat("cannot open ", PathToUtf8(path), " to hash it"));
  }
  std::unique_ptr<EVP_MD_CTX, EvpDeleter> ctx(EVP_MD_CTX_new());
  if (!ctx || EVP_DigestInit_ex(ctx.get(), EVP_sha256(), nullptr) != 1) {
    return absl::InternalError("OpenSSL SHA-256 init failed");
  }
  // Reads larger than the stream's buffer go straight to the OS.
  std::vector<char> buf(1 << 20);
  while (in) {
    in.read(buf.data(), static_cast<std::streamsize>(buf.size()));
    const std::streamsize n = in.gcount();
    if (n > 0) EVP_DigestUpdate(ctx.get(), buf.data(), static_cast<std::size_t>(n));
  }
  if (in.bad()) {
    return absl::InternalError(
        absl::StrCat("cannot read ", PathToUtf8(path), ": I/O error"));
  }
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  EVP_DigestFinal_ex(ctx.get(), md, &len);
  return ToHex(md, len);
}

std::string Sha256Hex(absl::string_view data) {
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  EVP_Digest(data.data(), data.size(), md, &len, EVP_sha256(), nullptr);
  return ToHex(md, len);
}

Sha256::Sha256() : ctx_(EVP_MD_CTX_new()) {
  EVP_DigestInit_ex(static_cast<EVP_MD_CTX*>(ctx_), EVP_sha256(), nullptr);
}

Sha256::~Sha256() { EVP_MD_CTX_free(static_cast<EVP_MD_CTX*>(ctx_)); }

void Sha256::Update(absl::string_view data) {
  EVP_DigestUpdate(static_cast<EVP_MD_CTX*>(ctx_), data.data(), data.size());
}

std::string Sha256::HexDigest() {
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  EVP_DigestFinal_ex(static_cast<EVP_MD_CTX*>(ctx_), md, &len);
  return ToHex(md, len);
}

bool IsSafeFileName(absl::string_view name) {
  if (name.empty() || name.size() > 200 || name == "." || name == "..") {
    return false;
  }
  auto alnum = [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
           (c >= '0' && c <= '9');
  };
  if (!alnum(name[0])) return false;
  for (char c : name) {
    if (!alnum(c) && c != '.' && c != '_' && c != '-') return false;
  }
  return true;
}

absl::StatusOr<std::uint64_t> FreeBytes(const std::filesystem::path& path) {
  std::uint64_t bytes = 0;
  std::string error;
  if (!file_ops::FreeBytes(path, &bytes, &error)) {
    return absl::InternalError(error);
  }
  return bytes;
}

absl::Status EnsureDirectory(const std::filesystem::path& dir) {
  std::string error;
  if (!file_ops::CreateDirectories(dir, &error)) {
    return absl::InternalError(error);
  }
  return absl::OkStatus();
}

absl::StatusOr<std::uint64_t> FileSize(const std::filesystem::path& path) {
  std::error_code ec;
  std::uintmax_t size = std::filesystem::file_size(file_ops::OsPath(path), ec);
  if (ec) {
    return absl::NotFoundError(
        absl::StrCat("cannot stat ", PathToUtf8(path), ": ", ec.message()));
  }
  return static_cast<std::uint64_t>(size);
}

std::string HumanBytes(std::uint64_t bytes) {
  static constexpr const char* kUnits[] = {"B", "KiB", "MiB", "GiB", "TiB"};
  double v = static_cast<double>(bytes);
  int unit = 0;
  while (v >= 1024 && unit < 4) {
    v /= 1024;
    ++unit;
  }
  if (unit == 0) return absl::StrCat(bytes, " B");
  if (v < 10) return absl::StrFormat("%.2f %s", v, kUnits[unit]);
  if (v < 100) return absl::StrFormat("%.1f %s", v, kUnits[unit]);
  return absl::StrFormat("%.0f %s", v, kUnits[unit]);
}

}  // namespace labtrace
