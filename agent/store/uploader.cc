#include "agent/store/uploader.h"

#include <atomic>
#include <thread>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "common/http_client.h"
#include "common/proto_time.h"

namespace labtrace::agent {
namespace {

constexpr int kMaxParts = 10000;
constexpr int kAttempts = 3;

absl::Status CheckRequest(const v1::UploadArtifactRequest& req,
                          std::uint64_t size) {
  if (req.parts_size() == 0 || req.parts_size() > kMaxParts) {
    return absl::InvalidArgumentError(
        absl::StrCat("an upload has 1 to ", kMaxParts, " parts, not ",
                     req.parts_size()));
  }
  if (req.parallel() < 0 || req.parallel() > 16) {
    return absl::InvalidArgumentError("parallel must be 0..16");
  }
  std::uint64_t next = 0;
  for (int i = 0; i < req.parts_size(); ++i) {
    const v1::UploadPart& p = req.parts(i);
    if (!absl::StartsWith(p.url(), "http://") &&
        !absl::StartsWith(p.url(), "https://")) {
      return absl::InvalidArgumentError(
          absl::StrCat("part ", i + 1, ": the URL must be http:// or https://"));
    }
    if (p.offset() != next) {
      return absl::InvalidArgumentError(absl::StrCat(
          "part ", i + 1, " starts at byte ", p.offset(), ", expected ", next,
          ": the parts must cover the file in order"));
    }
    if (p.part_number() < 0 || p.part_number() > kMaxParts ||
        (p.part_number() == 0 && req.parts_size() != 1)) {
      return absl::InvalidArgumentError(
          absl::StrCat("part ", i + 1, ": bad part_number ", p.part_number()));
    }
    next += p.length();
  }
  if (next != size) {
    return absl::InvalidArgumentError(absl::StrCat(
        "the parts cover ", next, " bytes; the artifact has ", size));
  }
  for (const auto& [k, v] : req.headers()) {
    if (k.empty() || k.find_first_not_of("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghij"
                                         "klmnopqrstuvwxyz0123456789-") !=
                         std::string::npos) {
      return absl::InvalidArgumentError(
          absl::StrCat("bad header name \"", k, "\""));
    }
    if (v.find_first_of("\r\n") != std::string::npos) {
      return absl::InvalidArgumentError(
          absl::StrCat("header ", k, ": line breaks are not allowed"));
    }
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<v1::UploadArtifactResponse> UploadArtifact(
    const ArtifactStore& store, const v1::UploadArtifactRequest& req,
    const std::function<bool()>& cancelled, absl::Time deadline) {
  absl::StatusOr<v1::Artifact> artifact = store.Get(req.artifact_id());
  if (!artifact.ok()) return artifact.status();
  absl::StatusOr<std::filesystem::path> path = store.PathOf(req.artifact_id());
  if (!path.ok()) return path.status();
  if (absl::Status s = CheckRequest(req, artifact->size_bytes()); !s.ok()) {
    return s;
  }
  const absl::Time began = absl::Now();
  const int parallel =
      std::min(req.parallel() == 0 ? 4 : req.parallel(), req.parts_size());

  absl::Mutex mu;
  absl::Status first_error;  // Guarded by mu.
  std::atomic<bool> failed{false};
  std::atomic<int> next{0};
  std::atomic<int> retries{0};
  std::vector<std::string> etags(static_cast<std::size_t>(req.parts_size()));
  auto stop = [&] { return failed.load() || (cancelled && cancelled()); };
  auto fail = [&](absl::Status s) {
    absl::MutexLock lock(&mu);
    if (first_error.ok()) first_error = std::move(s);
    failed = true;
  };

  auto worker = [&] {
    for (int i = next++; i < req.parts_size() && !stop(); i = next++) {
      const v1::UploadPart& p = req.parts(i);
      const std::string what =
          p.part_number() == 0
              ? absl::StrCat("PUT of ", artifact->file_name())
              : absl::StrCat("PUT of part ", p.part_number(), " of ",
                             artifact->file_name());
      for (int attempt = 1;; ++attempt) {
        http::Request r;
        r.method = "PUT";
        r.url = p.url();
        r.upload = http::FileRange{*path, p.offset(), p.length()};
        for (const auto& [k, v] : req.headers()) r.headers.push_back({k, v});
        r.deadline = deadline;
        r.cancelled = stop;
        absl::StatusOr<http::Response> got = http::Send(r);
        bool transient = false;
        absl::Status err;
        if (!got.ok()) {
          transient = absl::IsUnavailable(got.status());
          err = absl::Status(got.status().code(),
                             absl::StrCat(what, ": ", got.status().message()));
        } else if (got->status / 100 == 2) {
          etags[static_cast<std::size_t>(i)] = got->Header("etag");
          break;
        } else {
          transient = got->status >= 500;
          const std::string answer = http::DescribeAnswer(got->status, got->body);
          err = transient ? absl::UnavailableError(absl::StrCat(
                                what, ": the object store answered ", answer))
                          : absl::FailedPreconditionError(absl::StrCat(
                                what, ": the object store answered ", answer));
        }
        if (!transient || attempt >= kAttempts || stop() ||
            absl::Now() + absl::Seconds(attempt) > deadline) {
          if (attempt > 1) {
            err = absl::Status(err.code(), absl::StrCat(err.message(), " (after ",
                                                        attempt, " tries)"));
          }
          fail(std::move(err));
          return;
        }
        ++retries;
        absl::SleepFor(absl::Milliseconds(500) * attempt);
      }
    }
  };
  std::vector<std::thread> threads;
  for (int t = 1; t < parallel; ++t) threads.emplace_back(worker);
  worker();
  for (std::thread& t : threads) t.join();

  {
    absl::MutexLock lock(&mu);
    if (!first_error.ok()) return first_error;
  }
  if (cancelled && cancelled()) return absl::CancelledError("upload cancelled");
  v1::UploadArtifactResponse resp;
  for (int i = 0; i < req.parts_size(); ++i) {
    v1::UploadedPart* u = resp.add_parts();
    u->set_part_number(req.parts(i).part_number());
    u->set_etag(etags[static_cast<std::size_t>(i)]);
  }
  resp.set_bytes(artifact->size_bytes());
  *resp.mutable_took() = ToProtoDuration(absl::Now() - began);
  resp.set_retries(retries.load());
  return resp;
}

}  // namespace labtrace::agent
