#include "agent/store/artifact_store.h"

#include <algorithm>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "common/file_ops.h"
#include "common/file_util.h"
#include "common/names.h"
#include "common/proto_time.h"
#include "common/status_macros.h"
#include "common/time_util.h"
#include "google/protobuf/util/json_util.h"
#include "google/protobuf/util/time_util.h"
#include "spdlog/spdlog.h"

namespace labtrace::agent {
namespace {

constexpr absl::string_view kMetaSuffix = ".meta.json";

absl::Status UnknownArtifact(const std::string& id) {
  return absl::NotFoundError(
      absl::StrCat("no artifact with id ", QuoteForMessage(id),
                   " on this agent (ListArtifacts shows what exists)"));
}

}  // namespace

ArtifactStore::ArtifactStore(std::filesystem::path root)
    : root_(std::move(root)) {}

std::vector<ArtifactStore::LeftoverFile> ArtifactStore::LeftoverWorkFiles()
    const {
  std::vector<LeftoverFile> out;
  std::error_code ec;
  for (auto dir = std::filesystem::directory_iterator(root_ / "tmp", ec);
       !ec && dir != std::filesystem::directory_iterator(); dir.increment(ec)) {
    if (!dir->is_directory(ec)) continue;
    // "<session>.<n>"
    const std::string dname = PathToUtf8(dir->path().filename());
    const std::size_t dot = dname.rfind('.');
    const std::string session =
        dot == std::string::npos ? dname : dname.substr(0, dot);
    if (!IsValidName(session)) continue;
    std::error_code fec;
    for (auto f = std::filesystem::directory_iterator(dir->path(), fec);
         !fec && f != std::filesystem::directory_iterator(); f.increment(fec)) {
      if (!f->is_regular_file(fec)) continue;
      const std::string fname = PathToUtf8(f->path().filename());
      std::string backend;
      if (absl::EndsWith(fname, ".perf.data")) {
        backend = "perf";
      } else if (absl::EndsWithIgnoreCase(fname, ".etl")) {
        backend = "wpr";
      } else if (fname == "output.log") {
        backend = "exec";
      } else {
        continue;  // Scratch (wpr temp files, partial copies).
      }
      std::error_code tec;
      auto t = std::filesystem::last_write_time(f->path(), tec);
      LeftoverFile lf;
      lf.path = f->path();
      lf.session_name = session;
      lf.backend = backend;
      lf.modified =
          tec ? absl::Now()
              : absl::FromChrono(std::chrono::system_clock::now() +
                                 std::chrono::duration_cast<
                                     std::chrono::system_clock::duration>(
                                     t - std::filesystem::file_time_type::clock::now()));
      out.push_back(std::move(lf));
    }
  }
  return out;
}

void ArtifactStore::CleanWorkDirs() {
  std::error_code ec;
  std::filesystem::remove_all(root_ / "tmp", ec);
  if (ec) {
    spdlog::warn("cannot clean the work dirs in {}: {}",
                 PathToUtf8(root_ / "tmp"), ec.message());
  }
  (void)EnsureDirectory(root_ / "tmp");
}

absl::Status ArtifactStore::Load() {
  LABTRACE_RETURN_IF_ERROR(EnsureDirectory(artifacts_dir()));
  // Work dirs of a previous process stay: recovery salvages what is in them.
  LABTRACE_RETURN_IF_ERROR(EnsureDirectory(root_ / "tmp"));
  std::error_code ec;

  std::map<std::string, v1::Artifact> loaded;
  std::set<std::string> files_with_meta;
  std::vector<std::string> data_files;
  for (auto it = std::filesystem::directory_iterator(artifacts_dir(), ec);
       !ec && it != std::filesystem::directory_iterator(); it.increment(ec)) {
    const std::string fname = PathToUtf8(it->path().filename());
    if (!absl::EndsWith(fname, kMetaSuffix)) {
      if (absl::StrContains(fname, ".tmp.")) {
        std::filesystem::remove(it->path(), ec);  // Interrupted metadata write.
        ec.clear();
      } else {
        data_files.push_back(fname);
      }
      continue;
    }
    absl::StatusOr<std::string> text = ReadFile(it->path());
    v1::Artifact a;
    if (!text.ok() ||
        !google::protobuf::util::JsonStringToMessage(*text, &a).ok() ||
        a.id().empty() || !IsSafeFileName(a.file_name()) ||
        a.id() != a.file_name()) {
      spdlog::warn("ignoring unreadable artifact metadata {}",
                   PathToUtf8(it->path()));
      continue;
    }
    std::error_code size_ec;
    if (!std::filesystem::is_regular_file(artifacts_dir() / a.file_name(),
                                          size_ec)) {
      spdlog::warn("metadata {} names a missing file; ignoring it", fname);
      continue;
    }
    files_with_meta.insert(a.file_name());
    loaded[a.id()] = std::move(a);
  }
  if (ec) {
    return absl::InternalError(absl::StrCat(
        "cannot list ", PathToUtf8(artifacts_dir()), ": ", ec.message()));
  }
  for (const std::string& f : data_files) {
    if (!files_with_meta.count(f)) {
      spdlog::warn(
          "{} has no metadata (agent stopped while storing it?); not listed",
          PathToUtf8(artifacts_dir() / f));
    }
  }
  absl::MutexLock lock(&mu_);
  index_ = std::move(loaded);
  spdlog::info("artifact store {}: {} artifacts", PathToUtf8(artifacts_dir()),
               index_.size());
  return absl::OkStatus();
}

absl::StatusOr<std::filesystem::path> ArtifactStore::CreateWorkDir(
    const std::string& session_name) {
  std::uint64_t n;
  {
    absl::MutexLock lock(&mu_);
    n = ++work_dir_counter_;
  }
  std::filesystem::path dir =
      root_ / "tmp" / absl::StrCat(session_name, ".", n);
  std::error_code ec;
  std::filesystem::remove_all(dir, ec);
  LABTRACE_RETURN_IF_ERROR(EnsureDirectory(dir));
  return dir;
}

void ArtifactStore::RemoveWorkDir(const std::filesystem::path& dir) {
  std::error_code ec;
  std::filesystem::remove_all(dir, ec);
  if (ec)
    spdlog::warn("cannot remove work dir {}: {}", PathToUtf8(dir), ec.message());
}

std::string ArtifactStore::ReserveIdLocked(const std::string& base,
                                           absl::string_view ext) {
  std::error_code ec;
  for (int n = 1;; ++n) {
    std::string id =
        absl::StrCat(n == 1 ? base : absl::StrCat(base, "_", n), ext);
    if (index_.count(id) || reserved_.count(id)) continue;
    // A stray file without metadata also blocks the name: never overwrite.
    if (std::filesystem::exists(artifacts_dir() / id, ec)) continue;
    reserved_.insert(id);
    return id;
  }
}

absl::StatusOr<v1::Artifact> ArtifactStore::Add(
    const std::filesystem::path& file, absl::string_view extension,
    v1::Artifact meta) {
  LABTRACE_ASSIGN_OR_RETURN(std::uint64_t size, FileSize(file));
  LABTRACE_ASSIGN_OR_RETURN(std::string sha256, Sha256File(file));
  const std::string base =
      absl::StrCat(meta.session_name(), "_",
                   FileStamp(FromProtoTimestamp(meta.start_time())));
  std::string id;
  {
    absl::MutexLock lock(&mu_);
    id = ReserveIdLocked(base, extension);
  }
  const std::string& file_name = id;
  const std::filesystem::path dest = artifacts_dir() / file_name;
  meta.set_id(id);
  meta.set_file_name(file_name);
  meta.set_size_bytes(size);
  meta.set_sha256(sha256);

  absl::Status status = CommitFile(file, dest);
  std::error_code ec;
  if (status.ok()) {
    std::string error;
    if (!file_ops::MakePrivate(dest, &error)) spdlog::warn("{}", error);
    std::string json;
    google::protobuf::util::JsonPrintOptions opts;
    opts.add_whitespace = true;
    opts.preserve_proto_field_names = true;
    (void)google::protobuf::util::MessageToJsonString(meta, &json, opts);
    status = WriteFileAtomically(
        artifacts_dir() / absl::StrCat(file_name, kMetaSuffix), json);
    if (!status.ok()) std::filesystem::remove(dest, ec);
  }
  absl::MutexLock lock(&mu_);
  reserved_.erase(id);
  if (!status.ok()) return status;
  index_[id] = meta;
  return meta;
}

absl::StatusOr<v1::Artifact> ArtifactStore::Get(const std::string& id) const {
  absl::MutexLock lock(&mu_);
  auto it = index_.find(id);
  if (it == index_.end()) return UnknownArtifact(id);
  return it->second;
}

std::vector<v1::Artifact> ArtifactStore::List(
    const std::string& run_id, const std::string& session_name) const {
  std::vector<v1::Artifact> out;
  {
    absl::MutexLock lock(&mu_);
    for (const auto& [id, a] : index_) {
      if (!run_id.empty() && a.run_id() != run_id) continue;
      if (!session_name.empty() && a.session_name() != session_name) continue;
      out.push_back(a);
    }
  }
  std::sort(out.begin(), out.end(),
            [](const v1::Artifact& a, const v1::Artifact& b) {
              const auto& ta = a.stop_time();
              const auto& tb = b.stop_time();
              if (ta.seconds() != tb.seconds())
                return ta.seconds() > tb.seconds();
              if (ta.nanos() != tb.nanos()) return ta.nanos() > tb.nanos();
              return a.id() > b.id();
            });
  return out;
}

absl::StatusOr<std::filesystem::path> ArtifactStore::PathOf(
    const std::string& id) const {
  absl::MutexLock lock(&mu_);
  auto it = index_.find(id);
  if (it == index_.end()) return UnknownArtifact(id);
  return artifacts_dir() / it->second.file_name();
}

absl::StatusOr<std::uint64_t> ArtifactStore::Delete(const std::string& id) {
  v1::Artifact a;
  {
    absl::MutexLock lock(&mu_);
    auto it = index_.find(id);
    if (it == index_.end()) return UnknownArtifact(id);
    a = std::move(it->second);
    index_.erase(it);
  }
  // Metadata first: a crash in between leaves an unlisted file, never a
  // listed artifact without its file.
  std::error_code ec;
  std::filesystem::remove(
      artifacts_dir() / absl::StrCat(a.file_name(), kMetaSuffix), ec);
  std::filesystem::remove(artifacts_dir() / a.file_name(), ec);
  if (ec) {
    return absl::InternalError(
        absl::StrCat("cannot delete ", a.file_name(), ": ", ec.message()));
  }
  return a.size_bytes();
}

int ArtifactStore::count() const {
  absl::MutexLock lock(&mu_);
  return static_cast<int>(index_.size());
}

std::uint64_t ArtifactStore::total_bytes() const {
  absl::MutexLock lock(&mu_);
  std::uint64_t total = 0;
  for (const auto& [id, a] : index_) total += a.size_bytes();
  return total;
}

namespace {

// "<seconds>.<nanos>.<id>" of an artifact: its place in the newest-first
// order.
std::string PageToken(const v1::Artifact& a) {
  return absl::StrCat(a.stop_time().seconds(), ".", a.stop_time().nanos(), ".",
                      a.id());
}

// True if `a` comes after the artifact a token names (newest first: older
// stop time, or the same time and a smaller id).
bool AfterToken(const v1::Artifact& a, std::int64_t seconds, std::int32_t nanos,
                const std::string& id) {
  const auto& t = a.stop_time();
  if (t.seconds() != seconds) return t.seconds() < seconds;
  if (t.nanos() != nanos) return t.nanos() < nanos;
  return a.id() < id;
}

}  // namespace

absl::Status ListArtifactsPage(const ArtifactStore& store,
                               const v1::ListArtifactsRequest& req,
                               v1::ListArtifactsResponse* resp) {
  LABTRACE_RETURN_IF_ERROR(ValidateOptionalName("run_id", req.run_id()));
  LABTRACE_RETURN_IF_ERROR(ValidateOptionalName("name", req.name()));
  if (req.page_size() < 0 || req.page_size() > kMaxArtifactsPage) {
    return absl::InvalidArgumentError(absl::StrCat(
        "page_size ", req.page_size(), " is outside 0..", kMaxArtifactsPage));
  }
  const int page = req.page_size() == 0 ? kMaxArtifactsPage : req.page_size();
  std::int64_t seconds = 0;
  std::int32_t nanos = 0;
  std::string id;
  if (!req.page_token().empty()) {
    std::vector<std::string> parts =
        absl::StrSplit(req.page_token(), absl::MaxSplits('.', 2));
    if (parts.size() != 3 || !absl::SimpleAtoi(parts[0], &seconds) ||
        !absl::SimpleAtoi(parts[1], &nanos) || !IsSafeFileName(parts[2])) {
      return absl::InvalidArgumentError(
          "page_token is not one this agent gave out (next_page_token)");
    }
    id = parts[2];
  }
  int n = 0;
  for (v1::Artifact& a : store.List(req.run_id(), req.name())) {
    if (!id.empty() && !AfterToken(a, seconds, nanos, id)) continue;
    if (n == page) {
      resp->set_next_page_token(
          PageToken(resp->artifacts(resp->artifacts_size() - 1)));
      break;
    }
    *resp->add_artifacts() = std::move(a);
    ++n;
  }
  return absl::OkStatus();
}

}  // namespace labtrace::agent
