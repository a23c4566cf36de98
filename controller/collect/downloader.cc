#include "controller/collect/downloader.h"

#include <fstream>
#include <vector>

#include "absl/strings/str_cat.h"
#include "common/file_util.h"
#include "common/names.h"
#include "common/status_macros.h"

namespace labtrace::controller {
namespace {

// Feeds a file's bytes to `hash`; returns its size.
absl::StatusOr<std::uint64_t> HashFile(const std::filesystem::path& path,
                                       Sha256* hash) {
  std::ifstream in(path, std::ios::binary);
  if (!in)
    return absl::InternalError(absl::StrCat("cannot read ", PathToUtf8(path)));
  std::vector<char> buf(1 << 20);
  std::uint64_t total = 0;
  while (in) {
    in.read(buf.data(), static_cast<std::streamsize>(buf.size()));
    const std::streamsize n = in.gcount();
    if (n <= 0) break;
    hash->Update(absl::string_view(buf.data(), static_cast<std::size_t>(n)));
    total += static_cast<std::uint64_t>(n);
  }
  return total;
}

}  // namespace

absl::StatusOr<DownloadResult> DownloadArtifact(
    AgentClient& client, const v1::Artifact& artifact,
    const std::filesystem::path& dir, absl::Time deadline,
    const ProgressFn& progress) {
  if (!IsSafeFileName(artifact.file_name())) {
    return absl::InvalidArgumentError(absl::StrCat(
        "the agent sent an unsafe file name ",
        QuoteForMessage(artifact.file_name()), "; not writing it"));
  }
  LABTRACE_RETURN_IF_ERROR(EnsureDirectory(dir));
  DownloadResult result;
  result.path = dir / artifact.file_name();
  result.bytes = artifact.size_bytes();
  std::filesystem::path part = result.path;
  part += ".part";
  std::error_code ec;

  if (std::filesystem::is_regular_file(result.path, ec)) {
    Sha256 h;
    absl::StatusOr<std::uint64_t> size = HashFile(result.path, &h);
    if (size.ok() && *size == artifact.size_bytes() &&
        h.HexDigest() == artifact.sha256()) {
      result.already_present = true;
      return result;
    }
    // A different file of that name: never silently keep it.
    return absl::AlreadyExistsError(absl::StrCat(
        PathToUtf8(result.path),
        " exists with other contents; move it away to collect again"));
  }

  Sha256 hash;
  std::uint64_t offset = 0;
  if (std::filesystem::is_regular_file(part, ec)) {
    LABTRACE_ASSIGN_OR_RETURN(offset, HashFile(part, &hash));
    if (offset > artifact.size_bytes()) {
      std::filesystem::remove(part, ec);  // Longer than the artifact: stale.
      offset = 0;
    }
  }
  // Hash state after the prefix; rebuild it if we had to start over.
  Sha256 fresh;
  Sha256* h = offset > 0 ? &hash : &fresh;
  result.resumed_from = offset;

  std::ofstream out(
      part, std::ios::binary | (offset > 0 ? std::ios::app : std::ios::trunc));
  if (!out)
    return absl::InternalError(absl::StrCat("cannot write ", PathToUtf8(part)));
  std::uint64_t at = offset;
  absl::Status fetched = client.FetchArtifact(
      artifact.id(), offset,
      [&](const v1::ArtifactChunk& chunk) -> absl::Status {
        if (chunk.offset() != at) {
          return absl::DataLossError(absl::StrCat("chunk at offset ",
                                                  chunk.offset(), " where ", at,
                                                  " was expected"));
        }
        out.write(chunk.data().data(),
                  static_cast<std::streamsize>(chunk.data().size()));
        if (!out)
          return absl::InternalError(
              absl::StrCat("cannot write ", PathToUtf8(part)));
        h->Update(chunk.data());
        at += chunk.data().size();
        result.transferred += chunk.data().size();
        if (progress) progress(at, artifact.size_bytes());
        return absl::OkStatus();
      },
      deadline);
  out.close();
  if (!fetched.ok()) return fetched;
  if (!out)
    return absl::InternalError(absl::StrCat("cannot write ", PathToUtf8(part)));
  const std::string digest = h->HexDigest();
  if (at != artifact.size_bytes() || digest != artifact.sha256()) {
    std::filesystem::remove(part, ec);
    return absl::DataLossError(absl::StrCat(
        artifact.file_name(), ": downloaded ", at, " bytes with sha256 ",
        digest, " but the agent reported ", artifact.size_bytes(),
        " bytes with sha256 ", artifact.sha256(),
        "; the partial file was removed, rerun to fetch again"));
  }
  // Flushed to disk, then renamed durably: after a crash or power loss the
  // file is either absent (the .part resumes) or whole.
  LABTRACE_RETURN_IF_ERROR(CommitFile(part, result.path));
  return result;
}

}  // namespace labtrace::controller
