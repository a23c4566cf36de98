#include "controller/collect/collector.h"

#include <atomic>
#include <cstdio>
#include <mutex>

#include "absl/strings/str_format.h"
#include "common/file_util.h"
#include "controller/collect/downloader.h"

namespace labtrace::controller {
namespace {

// A single self-overwriting progress line on stderr, at most ~5 per second.
class ProgressLine {
 public:
  ProgressLine(bool enabled, std::uint64_t total_bytes, int total_files)
      : enabled_(enabled),
        total_bytes_(total_bytes),
        total_files_(total_files) {}
  ~ProgressLine() {
    if (enabled_ && printed_) std::fprintf(stderr, "\n");
  }
  void Add(std::uint64_t bytes) {
    done_bytes_ += bytes;
    Print(false);
  }
  void FileDone() {
    ++done_files_;
    Print(true);
  }

 private:
  void Print(bool force) {
    if (!enabled_) return;
    std::lock_guard<std::mutex> lock(mu_);
    const absl::Time now = absl::Now();
    if (!force && now - last_ < absl::Milliseconds(200)) return;
    last_ = now;
    printed_ = true;
    const double secs = absl::ToDoubleSeconds(now - start_);
    const double rate =
        secs > 0 ? static_cast<double>(done_bytes_.load()) / secs : 0;
    std::fprintf(stderr, "\rcollecting: %d/%d files, %s / %s, %s/s   ",
                 done_files_.load(), total_files_,
                 HumanBytes(done_bytes_.load()).c_str(),
                 HumanBytes(total_bytes_).c_str(),
                 HumanBytes(static_cast<std::uint64_t>(rate)).c_str());
  }

  const bool enabled_;
  const std::uint64_t total_bytes_;
  const int total_files_;
  std::atomic<std::uint64_t> done_bytes_{0};
  std::atomic<int> done_files_{0};
  std::mutex mu_;
  absl::Time start_ = absl::Now();
  absl::Time last_ = absl::InfinitePast();
  bool printed_ = false;
};

}  // namespace

std::vector<CollectedFile> CollectArtifacts(
    const std::vector<std::pair<Host, std::vector<v1::Artifact>>>& work,
    ClientPool& clients, const CollectOptions& options) {
  std::uint64_t total_bytes = 0;
  int total_files = 0;
  std::vector<Host> hosts;
  for (const auto& [host, artifacts] : work) {
    hosts.push_back(host);
    for (const auto& a : artifacts) {
      total_bytes += a.size_bytes();
      ++total_files;
    }
  }
  ProgressLine progress(options.show_progress, total_bytes, total_files);
  FanOutOptions fo;
  fo.parallel = options.parallel;
  // Deadlines are per file, below; the fan-out itself does not bound time.
  fo.per_host_timeout = absl::InfiniteDuration();
  std::vector<HostResult<std::vector<CollectedFile>>> results =
      FanOut<std::vector<CollectedFile>>(
          hosts, clients, fo,
          [&](AgentClient& client, const Host& host,
              absl::Time) -> absl::StatusOr<std::vector<CollectedFile>> {
            std::vector<CollectedFile> files;
            for (const auto& [h, artifacts] : work) {
              if (h.name != host.name) continue;
              for (const v1::Artifact& a : artifacts) {
                CollectedFile f;
                f.host = host.name;
                f.artifact = a;
                std::uint64_t seen = 0;
                absl::StatusOr<DownloadResult> r =
                    DownloadArtifact(client, a, options.dir / host.name,
                                     absl::Now() + options.per_file_timeout,
                                     [&](std::uint64_t at, std::uint64_t) {
                                       progress.Add(at - seen);
                                       seen = at;
                                     });
                if (r.ok()) {
                  f.path = r->path;
                  f.status =
                      r->already_present ? "already_present" : "collected";
                  if (r->already_present) progress.Add(a.size_bytes());
                } else {
                  f.status = r.status().code() == absl::StatusCode::kDataLoss
                                 ? "digest_mismatch"
                                 : "failed";
                  f.error = r.status().ToString();
                }
                progress.FileDone();
                files.push_back(std::move(f));
              }
            }
            return files;
          });
  std::vector<CollectedFile> out;
  for (auto& r : results) {
    for (auto& f : r.value) out.push_back(std::move(f));
  }
  return out;
}

}  // namespace labtrace::controller
