// ArtifactStore: the agent's finished trace files and their metadata.
//
// Layout under the store's root (<data_dir>):
//   artifacts/<id>            a trace file: unit_tests_20261122_014205.etl
//   artifacts/<id>.meta.json  its metadata (v1::Artifact as protobuf JSON)
//   tmp/<session>.<n>/        backends' work dirs (same volume)
// The id is the file name: unique in the store, and what clients pass.
// A file enters the store only when complete: Add() hashes the finished
// file, renames it into artifacts/ and then writes its metadata atomically;
// only files with metadata are listed, so a listed artifact is always whole.
// Ids come from a client and are only ever looked up in the index, never
// used to build a path.
//
// Thread-safe. No lock is held across hashing, renames or metadata writes.

#ifndef LABTRACE_AGENT_STORE_ARTIFACT_STORE_H_
#define LABTRACE_AGENT_STORE_ARTIFACT_STORE_H_

#include <cstdint>
#include <filesystem>
#include <functional>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "labtrace/v1/agent.pb.h"

namespace labtrace::agent {

class ArtifactStore {
 public:
  explicit ArtifactStore(std::filesystem::path root);
  ArtifactStore(const ArtifactStore&) = delete;
  ArtifactStore& operator=(const ArtifactStore&) = delete;

  // Creates the directories and reads every metadata file. Work dirs of a
  // previous run are left for recovery (SessionManager::Recover), which
  // then calls CleanWorkDirs(). Metadata naming an unsafe or missing file,
  // and files without metadata, are reported in the log and left alone.
  absl::Status Load();

  // A trace or log file left in a work dir by a previous agent process.
  struct LeftoverFile {
    std::filesystem::path path;
    std::string session_name;  // From the work dir's name.
    std::string backend;       // "perf", "wpr", "exec" (by extension).
    absl::Time modified;
  };
  // Every such file (.etl, .perf.data, output.log) in the work dirs.
  std::vector<LeftoverFile> LeftoverWorkFiles() const;
  // Removes every work dir (after recovery).
  void CleanWorkDirs();

  // A new empty work dir for a backend on the store's volume.
  absl::StatusOr<std::filesystem::path> CreateWorkDir(
      const std::string& session_name);
  // Removes a work dir and whatever is left in it.
  void RemoveWorkDir(const std::filesystem::path& dir);

  // Moves `file` into the store as `<session>_<start stamp>[_N]<ext>`.
  // `meta` carries the session fields; Add fills id, file_name, size_bytes
  // and sha256 and returns the stored metadata. The file is flushed to disk
  // and renamed durably before its metadata is written (then also flushed),
  // and made readable by its owner only: after a crash or power loss an
  // artifact is either listed and whole or not listed.
  absl::StatusOr<v1::Artifact> Add(const std::filesystem::path& file,
                                   absl::string_view extension,
                                   v1::Artifact meta);

  absl::StatusOr<v1::Artifact> Get(const std::string& id) const;
  // Newest first; empty filters match everything.
  std::vector<v1::Artifact> List(const std::string& run_id,
                                 const std::string& session_name) const;
  // Path of the artifact's file, for streaming.
  absl::StatusOr<std::filesystem::path> PathOf(const std::string& id) const;
  // Deletes file and metadata; returns the bytes freed.
  absl::StatusOr<std::uint64_t> Delete(const std::string& id);

  int count() const;
  std::uint64_t total_bytes() const;
  const std::filesystem::path& root() const { return root_; }
  std::filesystem::path artifacts_dir() const { return root_ / "artifacts"; }

 private:
  // Picks a free id (= file name) "<base>[_N]<ext>" and reserves it.
  std::string ReserveIdLocked(const std::string& base, absl::string_view ext)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  const std::filesystem::path root_;
  mutable absl::Mutex mu_;
  std::map<std::string, v1::Artifact> index_ ABSL_GUARDED_BY(mu_);
  std::set<std::string> reserved_ ABSL_GUARDED_BY(mu_);
  std::uint64_t work_dir_counter_ ABSL_GUARDED_BY(mu_) = 0;
};

// ListArtifacts for both transports: validates the filters and returns one
// page, newest first. page_token is where the previous page ended (stop
// time and id of its last artifact), so pages stay consistent while
// artifacts are added or deleted.
inline constexpr int kMaxArtifactsPage = 1000;
absl::Status ListArtifactsPage(const ArtifactStore& store,
                               const v1::ListArtifactsRequest& request,
                               v1::ListArtifactsResponse* response);

}  // namespace labtrace::agent

#endif  // LABTRACE_AGENT_STORE_ARTIFACT_STORE_H_
