// S3-compatible object storage, from the controller's side: where objects
// go (s3://bucket/prefix), whose credentials sign (environment, the AWS
// credentials file, the inventory's `egress:` block), the controller's own
// S3 calls (signed by libcurl's AWS SigV4), and presigned URLs for the
// agents, which hold no keys: each URL lets one agent PUT one object or one
// part of a multipart upload, for a limited time.
//
//   S3Config cfg = *ResolveS3Config(inventory.egress);
//   S3Client s3(cfg);
//   std::string url = s3.PresignPut("runs/r1/vm1/a.etl", sha256, Hours(6));
//   // ... the agent PUTs the file to `url` with x-amz-meta-sha256: sha256
//   absl::StatusOr<ObjectInfo> o = s3.Head("runs/r1/vm1/a.etl");
//
// Addressing is path-style (http://endpoint/bucket/key), which every
// S3-compatible store (Ceph RGW, MinIO) and AWS accept.

#ifndef LABTRACE_CONTROLLER_EGRESS_S3_H_
#define LABTRACE_CONTROLLER_EGRESS_S3_H_

#include <cstdint>
#include <filesystem>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"

namespace labtrace::controller {

// s3://bucket[/prefix]
struct S3Location {
  std::string bucket;
  std::string prefix;  // No leading or trailing '/'; may be empty.
  static absl::StatusOr<S3Location> Parse(const std::string& url);
  // prefix/rel (or rel without a prefix).
  std::string Key(const std::string& rel) const;
  std::string Url(const std::string& key) const;  // s3://bucket/key
};

// The inventory's `egress:` block (all optional).
struct EgressSettings {
  std::string url;       // Default for --egress.
  std::string endpoint;  // e.g. http://127.0.0.1:7480; default AWS.
  std::string region;
  std::string profile;   // In ~/.aws/credentials.
};

struct S3Config {
  std::string endpoint;  // scheme://host[:port], no trailing '/'.
  std::string region = "us-east-1";
  std::string access_key;
  std::string secret_key;
  std::string session_token;  // Temporary credentials; may be empty.
  std::string credentials_from;  // "environment", "~/.aws/credentials [p]".
};

// Endpoint: settings.endpoint, else AWS_ENDPOINT_URL_S3, AWS_ENDPOINT_URL,
// else https://s3.<region>.amazonaws.com. Region: settings.region, else
// AWS_REGION, AWS_DEFAULT_REGION, the profile's region in ~/.aws/config,
// else us-east-1. Keys: AWS_ACCESS_KEY_ID + AWS_SECRET_ACCESS_KEY (+
// AWS_SESSION_TOKEN), else the profile (settings.profile, AWS_PROFILE, or
// "default") in AWS_SHARED_CREDENTIALS_FILE or ~/.aws/credentials.
absl::StatusOr<S3Config> ResolveS3Config(const EgressSettings& settings);

// AWS SigV4 query-string signing (a presigned URL). libcurl signs requests
// but cannot presign, so this is ours; tested against AWS's published
// example. `host` as sent in the Host header; `path` the canonical URI
// (already URI-encoded); `query` extra parameters (unencoded);
// `signed_headers` (lower-case names) the client must send exactly.
std::string PresignV4(const std::string& method, const std::string& scheme,
                      const std::string& host, const std::string& path,
                      std::map<std::string, std::string> query,
                      const std::map<std::string, std::string>& signed_headers,
                      const std::string& region, const std::string& access_key,
                      const std::string& secret_key,
                      const std::string& session_token, absl::Time now,
                      absl::Duration expires);

struct ObjectInfo {
  std::uint64_t size = 0;
  std::string sha256;  // x-amz-meta-sha256 (empty if the object has none).
  std::string etag;
};

class S3Client {
 public:
  explicit S3Client(S3Config config);
  const S3Config& config() const { return config_; }

  // A clear error for a missing bucket or refused credentials, before any
  // agent is asked to upload.
  absl::Status CheckBucket(const std::string& bucket);
  // NOT_FOUND if there is no such object.
  absl::StatusOr<ObjectInfo> Head(const std::string& bucket,
                                  const std::string& key);
  absl::StatusOr<std::string> CreateMultipart(const std::string& bucket,
                                              const std::string& key,
                                              const std::string& sha256);
  absl::Status CompleteMultipart(
      const std::string& bucket, const std::string& key,
      const std::string& upload_id,
      const std::vector<std::pair<int, std::string>>& part_etags);
  absl::Status AbortMultipart(const std::string& bucket,
                              const std::string& key,
                              const std::string& upload_id);
  absl::Status PutSmall(const std::string& bucket, const std::string& key,
                        const std::string& body,
                        const std::string& content_type);
  absl::StatusOr<std::string> GetSmall(const std::string& bucket,
                                       const std::string& key);
  // Downloads into `path`; returns the sha256 of what was written.
  absl::StatusOr<std::string> GetToFile(const std::string& bucket,
                                        const std::string& key,
                                        const std::filesystem::path& path,
                                        absl::Time deadline);

  // Presigned URLs for agents. PUT of a whole object: the agent must send
  // x-amz-meta-sha256: `sha256` (signed). UploadPart: no extra header.
  std::string PresignPut(const std::string& bucket, const std::string& key,
                         const std::string& sha256, absl::Duration expires);
  std::string PresignUploadPart(const std::string& bucket,
                                const std::string& key,
                                const std::string& upload_id, int part_number,
                                absl::Duration expires);

 private:
  std::string ObjectPath(const std::string& bucket,
                         const std::string& key) const;
  std::string host_;    // As in the Host header.
  std::string scheme_;  // http or https.
  S3Config config_;
};

// An S3 error answer as a status: the store's code and message, and what
// to do about it.
absl::Status S3Error(long http_status, const std::string& body,
                     const std::string& what);

}  // namespace labtrace::controller

#endif  // LABTRACE_CONTROLLER_EGRESS_S3_H_
