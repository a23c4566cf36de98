// HTTP requests with libcurl, for object storage: an agent PUTs an
// artifact's bytes (a whole file or one part of it) to a presigned URL, the
// controller talks to the S3 API (AWS SigV4 signed by libcurl) and downloads
// objects into files.
//
//   HttpRequest r;
//   r.method = "PUT";
//   r.url = presigned_url;
//   r.upload = HttpFileRange{path, offset, length};
//   r.headers = {{"x-amz-meta-sha256", digest}};
//   absl::StatusOr<HttpResponse> got = SendHttp(r);  // Any answer is OK;
//   if (got.ok() && got->status == 200) ... got->Header("etag")
//
// Errors: a transport failure (refused, reset, TLS, a stalled peer, the
// deadline, cancelled) is UNAVAILABLE / DEADLINE_EXCEEDED / CANCELLED with
// curl's words; an HTTP error answer is an HttpResponse (status, body).
// Nothing is retried here.

#ifndef LABTRACE_COMMON_HTTP_CLIENT_H_
#define LABTRACE_COMMON_HTTP_CLIENT_H_

#include <cstdint>
#include <filesystem>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"

namespace labtrace::http {

struct FileRange {
  std::filesystem::path path;
  std::uint64_t offset = 0;
  std::uint64_t length = 0;
};

struct Request {
  std::string method = "GET";
  std::string url;
  std::vector<std::pair<std::string, std::string>> headers;
  // The body: bytes, or a range of a file (streamed, never all in memory).
  std::string body;
  std::optional<FileRange> upload;
  // The response body goes to this file (created/truncated) instead of
  // Response::body; its sha256 is computed on the way (Response::sha256).
  std::optional<std::filesystem::path> download_to;
  // AWS SigV4 by libcurl ("aws:amz:REGION:s3") with "KEY:SECRET".
  std::string aws_sigv4;
  std::string aws_userpwd;
  absl::Duration connect_timeout = absl::Seconds(10);
  // A transfer that moves fewer than 1 byte/s for this long has stalled.
  absl::Duration stall_timeout = absl::Seconds(30);
  absl::Time deadline = absl::InfiniteFuture();
  // Polled during the transfer: true aborts it (CANCELLED).
  std::function<bool()> cancelled;
  // Bytes sent so far (uploads), for progress.
  std::function<void(std::uint64_t)> on_progress;
  std::size_t max_body = 1 << 20;  // Response bytes kept in memory.
};

struct Response {
  long status = 0;
  std::map<std::string, std::string> headers;  // Names lower-cased.
  std::string body;
  std::string sha256;  // Of the downloaded file (download_to).
  std::uint64_t bytes_sent = 0;
  std::uint64_t bytes_received = 0;
  std::string Header(const std::string& lower_name) const;
};

// Once per process, before any thread sends (curl_global_init).
void GlobalInit();

absl::StatusOr<Response> Send(const Request& request);

// "403 SignatureDoesNotMatch: The request signature ..." from an error
// answer (S3's XML <Code> and <Message> when present, else the status).
std::string DescribeAnswer(long status, const std::string& body);

// RFC 3986 percent-encoding of everything but unreserved characters (and
// '/' if `keep_slash`), as AWS SigV4 wants it.
std::string UriEncode(const std::string& s, bool keep_slash);

}  // namespace labtrace::http

#endif  // LABTRACE_COMMON_HTTP_CLIENT_H_
