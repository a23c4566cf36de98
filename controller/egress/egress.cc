#include "controller/egress/egress.h"

#include <algorithm>
#include <cstdlib>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"

namespace labtrace::controller {
namespace {

EgressedFile UploadOne(AgentClient& agent, const Host& host,
                       const v1::Artifact& a, const std::string& run_id,
                       S3Client& s3, const EgressOptions& o) {
  EgressedFile f;
  f.host = host.name;
  f.artifact = a;
  f.key = EgressKey(o.location, run_id, host.name, a.file_name());
  const std::string& bucket = o.location.bucket;
  const absl::Time began = absl::Now();
  const absl::Time deadline = began + o.per_file_timeout;
  auto failed = [&](const absl::Status& s) {
    f.status = "failed";
    f.error = std::string(s.message());
    f.took = absl::Now() - began;
    return f;
  };

  // Already there, whole and the same? Then nothing to send.
  absl::StatusOr<ObjectInfo> there = s3.Head(bucket, f.key);
  if (there.ok() && there->size == a.size_bytes() && there->sha256 == a.sha256()) {
    f.status = "already_uploaded";
    f.took = absl::Now() - began;
    return f;
  }
  if (!there.ok() && !absl::IsNotFound(there.status())) return failed(there.status());

  v1::UploadArtifactRequest req;
  req.set_artifact_id(a.id());
  req.set_parallel(o.parts_parallel);
  std::string upload_id;
  const std::uint64_t size = a.size_bytes();
  // At most 10,000 parts; every part but the last at least 5 MiB.
  const std::uint64_t part =
      std::max<std::uint64_t>({o.part_size, 5ull << 20, (size + 9999) / 10000});
  if (size <= part) {
    v1::UploadPart* p = req.add_parts();
    p->set_url(s3.PresignPut(bucket, f.key, a.sha256(), o.url_expiry));
    p->set_offset(0);
    p->set_length(size);
    (*req.mutable_headers())["x-amz-meta-sha256"] = a.sha256();
  } else {
    absl::StatusOr<std::string> id = s3.CreateMultipart(bucket, f.key, a.sha256());
    if (!id.ok()) return failed(id.status());
    upload_id = *id;
    int n = 0;
    for (std::uint64_t off = 0; off < size; off += part) {
      v1::UploadPart* p = req.add_parts();
      p->set_part_number(++n);
      p->set_url(s3.PresignUploadPart(bucket, f.key, upload_id, n, o.url_expiry));
      p->set_offset(off);
      p->set_length(std::min(part, size - off));
    }
  }
  absl::StatusOr<v1::UploadArtifactResponse> up = agent.UploadArtifact(req, deadline);
  absl::Status done = up.status();
  if (up.ok()) f.retries = up->retries();
  if (done.ok() && !upload_id.empty()) {
    std::vector<std::pair<int, std::string>> etags;
    for (const v1::UploadedPart& p : up->parts())
      etags.emplace_back(p.part_number(), p.etag());
    done = s3.CompleteMultipart(bucket, f.key, upload_id, etags);
  }
  if (!done.ok()) {
    // No orphaned parts left on the store (best effort: it may be down).
    if (!upload_id.empty()) (void)s3.AbortMultipart(bucket, f.key, upload_id);
    if (absl::IsUnimplemented(done)) {
      done = absl::UnimplementedError(absl::StrCat(
          "the agent on ", host.name,
          " cannot upload to object storage (older than UploadArtifact); "
          "upgrade it or collect with --out"));
    }
    return failed(done);
  }
  // Verify what the store holds.
  absl::StatusOr<ObjectInfo> now = s3.Head(bucket, f.key);
  if (!now.ok()) return failed(now.status());
  if (now->size != size || now->sha256 != a.sha256()) {
    return failed(absl::DataLossError(absl::StrCat(
        "the store holds ", now->size, " bytes with sha256 \"", now->sha256,
        "\", expected ", size, " bytes with ", a.sha256())));
  }
  f.status = "uploaded";
  f.took = absl::Now() - began;
  return f;
}

}  // namespace

std::uint64_t EgressPartSize() {
  std::uint64_t v = 0;
  const char* s = std::getenv("LABTRACE_EGRESS_PART_SIZE");
  if (s != nullptr && absl::SimpleAtoi(s, &v) && v >= (5ull << 20)) return v;
  return 64ull << 20;
}

std::string EgressKey(const S3Location& location, const std::string& run_id,
                      const std::string& host, const std::string& file_name) {
  return location.Key(run_id.empty()
                          ? absl::StrCat(host, "/", file_name)
                          : absl::StrCat(run_id, "/", host, "/", file_name));
}

std::vector<EgressedFile> EgressArtifacts(
    const std::vector<std::pair<Host, std::vector<v1::Artifact>>>& work,
    const std::string& run_id, ClientPool& clients, S3Client& s3,
    const EgressOptions& options) {
  std::vector<Host> hosts;
  for (const auto& [h, artifacts] : work) {
    if (!artifacts.empty()) hosts.push_back(h);
  }
  FanOutOptions fo;
  fo.parallel = options.parallel;
  fo.per_host_timeout = absl::InfiniteDuration();  // Deadlines are per file.
  absl::Mutex mu;
  auto results = FanOut<std::vector<EgressedFile>>(
      hosts, clients, fo,
      [&](AgentClient& agent, const Host& host,
          absl::Time) -> absl::StatusOr<std::vector<EgressedFile>> {
        std::vector<EgressedFile> files;
        for (const auto& [h, artifacts] : work) {
          if (h.name != host.name) continue;
          for (const v1::Artifact& a : artifacts) {
            files.push_back(UploadOne(agent, host, a, run_id, s3, options));
            if (options.on_file) {
              absl::MutexLock lock(&mu);
              options.on_file(files.back());
            }
          }
        }
        return files;
      });
  std::vector<EgressedFile> out;
  for (auto& r : results) {
    if (r.outcome == HostOutcome::kOk) {
      for (EgressedFile& f : r.value) out.push_back(std::move(f));
      continue;
    }
    for (const auto& [h, artifacts] : work) {
      if (h.name != r.host.name) continue;
      for (const v1::Artifact& a : artifacts) {
        EgressedFile f;
        f.host = h.name;
        f.artifact = a;
        f.key = EgressKey(options.location, run_id, h.name, a.file_name());
        f.status = "failed";
        f.error = std::string(r.status.message());
        out.push_back(std::move(f));
      }
    }
  }
  return out;
}

}  // namespace labtrace::controller
