// Journal: the on-disk record of what the agent is responsible for: active
// sessions, sessions whose recording could not be ended, and running step
// commands. A restarted agent reads it to salvage or end what a previous
// process left behind (SessionManager::Recover).
//
// The file (<data_dir>/journal.json) is replaced atomically (temp file,
// flush, rename), so it is always one whole snapshot. Writes run on a thread
// of their own, off the request path: Publish() hands over a snapshot and
// returns at once; bursts are coalesced to the newest snapshot. Flush()
// waits until everything published so far is on disk: StartTrace flushes
// before it answers, so a RUNNING trace is always journaled with its
// recovery handle.
//
// Faults: if the journal cannot be written (disk full, permissions), the
// error is kept (error()) and logged once per distinct message; the next
// publish tries again.

#ifndef LABTRACE_AGENT_SESSION_JOURNAL_H_
#define LABTRACE_AGENT_SESSION_JOURNAL_H_

#include <filesystem>
#include <optional>
#include <string>
#include <thread>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "labtrace/v1/journal.pb.h"

namespace labtrace::agent {

class Journal {
 public:
  explicit Journal(std::filesystem::path path);
  // Writes what is pending, then stops the writer.
  ~Journal();
  Journal(const Journal&) = delete;
  Journal& operator=(const Journal&) = delete;

  // The journal a previous process left: empty if there is none; an error
  // (with the path) if it exists but cannot be read or parsed.
  absl::StatusOr<v1::Journal> Load() const;

  // Queues `snapshot` for writing; a newer publish replaces an unwritten
  // older one.
  void Publish(v1::Journal snapshot);

  // Waits until every snapshot published so far is written (or failed).
  // False on timeout.
  bool Flush(absl::Duration timeout);

  // The last write error, empty when the last write succeeded.
  std::string error() const;
  const std::filesystem::path& path() const { return path_; }

 private:
  void WriterLoop();

  const std::filesystem::path path_;
  mutable absl::Mutex mu_;
  std::optional<v1::Journal> pending_ ABSL_GUARDED_BY(mu_);
  std::uint64_t published_ ABSL_GUARDED_BY(mu_) = 0;
  std::uint64_t written_ ABSL_GUARDED_BY(mu_) = 0;
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  std::string error_ ABSL_GUARDED_BY(mu_);
  std::thread writer_;
};

}  // namespace labtrace::agent

#endif  // LABTRACE_AGENT_SESSION_JOURNAL_H_
