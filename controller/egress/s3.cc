#include "controller/egress/s3.h"

#include <openssl/evp.h>
#include <openssl/hmac.h>

#include <cstdlib>
#include <fstream>
#include <sstream>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "common/file_util.h"
#include "common/http_client.h"

namespace labtrace::controller {
namespace {

std::string Env(const char* name) {
  const char* v = std::getenv(name);
  return v == nullptr ? std::string() : std::string(v);
}

std::string Hmac(absl::string_view key, absl::string_view data) {
  unsigned char out[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  HMAC(EVP_sha256(), key.data(), static_cast<int>(key.size()),
       reinterpret_cast<const unsigned char*>(data.data()), data.size(), out,
       &len);
  return std::string(reinterpret_cast<char*>(out), len);
}

std::string Hex(absl::string_view bytes) {
  static const char* digits = "0123456789abcdef";
  std::string out;
  out.reserve(bytes.size() * 2);
  for (unsigned char c : bytes) {
    out.push_back(digits[c >> 4]);
    out.push_back(digits[c & 15]);
  }
  return out;
}

// The value of <tag>...</tag> in a small XML answer (S3's are flat enough).
std::string XmlValue(const std::string& xml, const std::string& tag) {
  const std::string open = absl::StrCat("<", tag, ">");
  const size_t a = xml.find(open);
  if (a == std::string::npos) return "";
  const size_t b = xml.find(absl::StrCat("</", tag, ">"), a);
  if (b == std::string::npos) return "";
  return xml.substr(a + open.size(), b - a - open.size());
}

// INI sections of an AWS config/credentials file: section -> key -> value.
std::map<std::string, std::map<std::string, std::string>> ReadIni(
    const std::filesystem::path& path) {
  std::map<std::string, std::map<std::string, std::string>> out;
  std::ifstream in(path);
  std::string line, section;
  while (std::getline(in, line)) {
    absl::string_view l = absl::StripAsciiWhitespace(line);
    if (l.empty() || l[0] == '#' || l[0] == ';') continue;
    if (l.front() == '[' && l.back() == ']') {
      section = std::string(absl::StripAsciiWhitespace(l.substr(1, l.size() - 2)));
      continue;
    }
    const size_t eq = l.find('=');
    if (eq == absl::string_view::npos) continue;
    out[section][std::string(absl::StripAsciiWhitespace(l.substr(0, eq)))] =
        std::string(absl::StripAsciiWhitespace(l.substr(eq + 1)));
  }
  return out;
}

std::filesystem::path HomeFile(const char* env, const char* rel) {
  const std::string set = Env(env);
  if (!set.empty()) return PathFromUtf8(set);
  std::string home = Env("HOME");
  if (home.empty()) home = Env("USERPROFILE");
  return PathFromUtf8(home) / rel;
}

std::string AmzDate(absl::Time t) {
  return absl::FormatTime("%Y%m%dT%H%M%SZ", t, absl::UTCTimeZone());
}

}  // namespace

absl::StatusOr<S3Location> S3Location::Parse(const std::string& url) {
  if (!absl::StartsWith(url, "s3://")) {
    return absl::InvalidArgumentError(absl::StrCat(
        "\"", url, "\" is not an s3:// URL (s3://bucket or s3://bucket/prefix)"));
  }
  absl::string_view rest = absl::string_view(url).substr(5);
  S3Location loc;
  const size_t slash = rest.find('/');
  loc.bucket = std::string(rest.substr(0, slash));
  if (slash != absl::string_view::npos) {
    absl::string_view p = rest.substr(slash + 1);
    while (absl::ConsumeSuffix(&p, "/")) {
    }
    loc.prefix = std::string(p);
  }
  // Bucket names: 3-63 of [a-z0-9.-] (the rule every S3 store shares).
  if (loc.bucket.size() < 3 || loc.bucket.size() > 63 ||
      loc.bucket.find_first_not_of("abcdefghijklmnopqrstuvwxyz0123456789.-") !=
          std::string::npos) {
    return absl::InvalidArgumentError(
        absl::StrCat("\"", loc.bucket,
                     "\" is not a bucket name (3-63 of a-z 0-9 . -)"));
  }
  if (absl::StrContains(loc.prefix, "//") || absl::StrContains(loc.prefix, "..")) {
    return absl::InvalidArgumentError(
        absl::StrCat("bad prefix \"", loc.prefix, "\" in ", url));
  }
  return loc;
}

std::string S3Location::Key(const std::string& rel) const {
  return prefix.empty() ? rel : absl::StrCat(prefix, "/", rel);
}

std::string S3Location::Url(const std::string& key) const {
  return absl::StrCat("s3://", bucket, "/", key);
}

absl::StatusOr<S3Config> ResolveS3Config(const EgressSettings& s) {
  S3Config c;
  std::string profile = s.profile;
  if (profile.empty()) profile = Env("AWS_PROFILE");
  if (profile.empty()) profile = "default";

  c.region = s.region;
  if (c.region.empty()) c.region = Env("AWS_REGION");
  if (c.region.empty()) c.region = Env("AWS_DEFAULT_REGION");
  if (c.region.empty()) {
    auto config = ReadIni(HomeFile("AWS_CONFIG_FILE", ".aws/config"));
    const std::string section =
        profile == "default" ? "default" : absl::StrCat("profile ", profile);
    if (auto it = config.find(section); it != config.end()) {
      if (auto r = it->second.find("region"); r != it->second.end())
        c.region = r->second;
    }
  }
  if (c.region.empty()) c.region = "us-east-1";

  c.endpoint = s.endpoint;
  if (c.endpoint.empty()) c.endpoint = Env("AWS_ENDPOINT_URL_S3");
  if (c.endpoint.empty()) c.endpoint = Env("AWS_ENDPOINT_URL");
  if (c.endpoint.empty())
    c.endpoint = absl::StrCat("https://s3.", c.region, ".amazonaws.com");
  while (!c.endpoint.empty() && c.endpoint.back() == '/') c.endpoint.pop_back();
  if (!absl::StartsWith(c.endpoint, "http://") &&
      !absl::StartsWith(c.endpoint, "https://")) {
    return absl::InvalidArgumentError(absl::StrCat(
        "object store endpoint \"", c.endpoint,
        "\" must start with http:// or https://"));
  }

  if (s.profile.empty() && !Env("AWS_ACCESS_KEY_ID").empty()) {
    c.access_key = Env("AWS_ACCESS_KEY_ID");
    c.secret_key = Env("AWS_SECRET_ACCESS_KEY");
    c.session_token = Env("AWS_SESSION_TOKEN");
    c.credentials_from = "environment (AWS_ACCESS_KEY_ID)";
    if (c.secret_key.empty()) {
      return absl::InvalidArgumentError(
          "AWS_ACCESS_KEY_ID is set but AWS_SECRET_ACCESS_KEY is not");
    }
    return c;
  }
  const std::filesystem::path file =
      HomeFile("AWS_SHARED_CREDENTIALS_FILE", ".aws/credentials");
  auto creds = ReadIni(file);
  auto it = creds.find(profile);
  if (it == creds.end() || !it->second.count("aws_access_key_id") ||
      !it->second.count("aws_secret_access_key")) {
    return absl::FailedPreconditionError(absl::StrCat(
        "no object store credentials: set AWS_ACCESS_KEY_ID and "
        "AWS_SECRET_ACCESS_KEY, or put profile [", profile, "] in ",
        PathToUtf8(file), " (AWS_PROFILE or the inventory's egress.profile "
        "pick another)"));
  }
  c.access_key = it->second["aws_access_key_id"];
  c.secret_key = it->second["aws_secret_access_key"];
  if (it->second.count("aws_session_token"))
    c.session_token = it->second["aws_session_token"];
  c.credentials_from = absl::StrCat(PathToUtf8(file), " [", profile, "]");
  return c;
}

std::string PresignV4(const std::string& method, const std::string& scheme,
                      const std::string& host, const std::string& path,
                      std::map<std::string, std::string> query,
                      const std::map<std::string, std::string>& signed_headers,
                      const std::string& region, const std::string& access_key,
                      const std::string& secret_key,
                      const std::string& session_token, absl::Time now,
                      absl::Duration expires) {
  const std::string amz_date = AmzDate(now);
  const std::string day = amz_date.substr(0, 8);
  const std::string scope = absl::StrCat(day, "/", region, "/s3/aws4_request");
  std::map<std::string, std::string> headers = signed_headers;
  headers["host"] = host;
  std::vector<std::string> names;
  for (const auto& [k, v] : headers) names.push_back(k);
  const std::string signed_names = absl::StrJoin(names, ";");

  query["X-Amz-Algorithm"] = "AWS4-HMAC-SHA256";
  query["X-Amz-Credential"] = absl::StrCat(access_key, "/", scope);
  query["X-Amz-Date"] = amz_date;
  query["X-Amz-Expires"] = absl::StrCat(absl::ToInt64Seconds(expires));
  query["X-Amz-SignedHeaders"] = signed_names;
  if (!session_token.empty()) query["X-Amz-Security-Token"] = session_token;
  std::vector<std::string> pairs;  // Sorted by (encoded) name: map order.
  std::map<std::string, std::string> encoded;
  for (const auto& [k, v] : query) {
    encoded[http::UriEncode(k, false)] = http::UriEncode(v, false);
  }
  for (const auto& [k, v] : encoded) pairs.push_back(absl::StrCat(k, "=", v));
  const std::string canonical_query = absl::StrJoin(pairs, "&");

  std::string canonical_headers;
  for (const auto& [k, v] : headers) {
    absl::StrAppend(&canonical_headers, k, ":", absl::StripAsciiWhitespace(v),
                    "\n");
  }
  const std::string canonical_request =
      absl::StrCat(method, "\n", path, "\n", canonical_query, "\n",
                   canonical_headers, "\n", signed_names, "\nUNSIGNED-PAYLOAD");
  const std::string to_sign =
      absl::StrCat("AWS4-HMAC-SHA256\n", amz_date, "\n", scope, "\n",
                   Sha256Hex(canonical_request));
  const std::string k_date = Hmac(absl::StrCat("AWS4", secret_key), day);
  const std::string k_region = Hmac(k_date, region);
  const std::string k_service = Hmac(k_region, "s3");
  const std::string k_signing = Hmac(k_service, "aws4_request");
  const std::string signature = Hex(Hmac(k_signing, to_sign));
  return absl::StrCat(scheme, "://", host, path, "?", canonical_query,
                      "&X-Amz-Signature=", signature);
}

absl::Status S3Error(long status, const std::string& body,
                     const std::string& what) {
  const std::string code = XmlValue(body, "Code");
  std::string detail = code.empty() ? absl::StrCat("HTTP ", status)
                                    : absl::StrCat(code, ", HTTP ", status);
  const std::string message = XmlValue(body, "Message");
  if (!message.empty()) absl::StrAppend(&detail, ": ", message);
  const std::string text = absl::StrCat(what, ": the object store answered ",
                                        detail);
  if (code == "NoSuchBucket") {
    return absl::NotFoundError(
        absl::StrCat(text, "; create the bucket or fix --egress"));
  }
  if (code == "InvalidAccessKeyId" || code == "SignatureDoesNotMatch" ||
      code == "AccessDenied" || status == 403) {
    return absl::PermissionDeniedError(absl::StrCat(
        text, "; check the credentials (AWS_ACCESS_KEY_ID / "
              "AWS_SECRET_ACCESS_KEY or the profile) and the region"));
  }
  if (status == 404) return absl::NotFoundError(text);
  if (status == 503 || status == 500 || status == 502 || status == 504) {
    return absl::UnavailableError(text);
  }
  return absl::FailedPreconditionError(text);
}

S3Client::S3Client(S3Config config) : config_(std::move(config)) {
  absl::string_view e = config_.endpoint;
  scheme_ = absl::StartsWith(e, "https://") ? "https" : "http";
  e.remove_prefix(scheme_.size() + 3);
  host_ = std::string(e.substr(0, e.find('/')));
  // curl leaves a default port out of the Host header; so must the signature.
  if (scheme_ == "http" && absl::EndsWith(host_, ":80")) host_.resize(host_.size() - 3);
  if (scheme_ == "https" && absl::EndsWith(host_, ":443")) host_.resize(host_.size() - 4);
}

std::string S3Client::ObjectPath(const std::string& bucket,
                                 const std::string& key) const {
  return absl::StrCat("/", bucket, "/", http::UriEncode(key, true));
}

namespace {
http::Request Signed(const S3Config& c, const std::string& method,
                     const std::string& url) {
  http::Request r;
  r.method = method;
  r.url = url;
  r.aws_sigv4 = absl::StrCat("aws:amz:", c.region, ":s3");
  r.aws_userpwd = absl::StrCat(c.access_key, ":", c.secret_key);
  // curl 7.88 signs the payload only with this header present.
  r.headers.push_back({"x-amz-content-sha256", "UNSIGNED-PAYLOAD"});
  if (!c.session_token.empty())
    r.headers.push_back({"x-amz-security-token", c.session_token});
  r.deadline = absl::Now() + absl::Minutes(5);
  return r;
}
}  // namespace

absl::Status S3Client::CheckBucket(const std::string& bucket) {
  http::Request r = Signed(config_, "GET",
                           absl::StrCat(config_.endpoint, "/", bucket,
                                        "?list-type=2&max-keys=1"));
  absl::StatusOr<http::Response> got = http::Send(r);
  if (!got.ok()) {
    return absl::Status(got.status().code(),
                        absl::StrCat("cannot reach the object store at ",
                                     config_.endpoint, ": ",
                                     got.status().message()));
  }
  if (got->status / 100 == 2) return absl::OkStatus();
  return S3Error(got->status, got->body,
                 absl::StrCat("bucket ", bucket, " at ", config_.endpoint));
}

absl::StatusOr<ObjectInfo> S3Client::Head(const std::string& bucket,
                                          const std::string& key) {
  http::Request r = Signed(config_, "HEAD",
                           config_.endpoint + ObjectPath(bucket, key));
  absl::StatusOr<http::Response> got = http::Send(r);
  if (!got.ok()) return got.status();
  if (got->status == 404) {
    return absl::NotFoundError(absl::StrCat("no object s3://", bucket, "/", key));
  }
  if (got->status / 100 != 2) {
    return S3Error(got->status, got->body,
                   absl::StrCat("HEAD s3://", bucket, "/", key));
  }
  ObjectInfo o;
  if (!absl::SimpleAtoi(got->Header("content-length"), &o.size)) {
    return absl::DataLossError(absl::StrCat(
        "HEAD s3://", bucket, "/", key, ": no usable Content-Length (\"",
        got->Header("content-length"), "\")"));
  }
  o.sha256 = got->Header("x-amz-meta-sha256");
  o.etag = got->Header("etag");
  return o;
}

absl::StatusOr<std::string> S3Client::CreateMultipart(
    const std::string& bucket, const std::string& key,
    const std::string& sha256) {
  // "uploads=", not "uploads": curl 7.88's SigV4 canonicalises a bare
  // query parameter wrongly (SignatureDoesNotMatch).
  http::Request r = Signed(config_, "POST",
                           config_.endpoint + ObjectPath(bucket, key) +
                               "?uploads=");
  r.headers.push_back({"x-amz-meta-sha256", sha256});
  absl::StatusOr<http::Response> got = http::Send(r);
  if (!got.ok()) return got.status();
  if (got->status / 100 != 2) {
    return S3Error(got->status, got->body,
                   absl::StrCat("starting the upload of s3://", bucket, "/", key));
  }
  std::string id = XmlValue(got->body, "UploadId");
  if (id.empty()) {
    return absl::UnavailableError(absl::StrCat(
        "the object store started an upload of ", key, " without an UploadId"));
  }
  return id;
}

absl::Status S3Client::CompleteMultipart(
    const std::string& bucket, const std::string& key,
    const std::string& upload_id,
    const std::vector<std::pair<int, std::string>>& parts) {
  std::string xml = "<CompleteMultipartUpload>";
  for (const auto& [n, etag] : parts) {
    absl::StrAppend(&xml, "<Part><PartNumber>", n, "</PartNumber><ETag>", etag,
                    "</ETag></Part>");
  }
  absl::StrAppend(&xml, "</CompleteMultipartUpload>");
  http::Request r = Signed(
      config_, "POST",
      absl::StrCat(config_.endpoint, ObjectPath(bucket, key),
                   "?uploadId=", http::UriEncode(upload_id, false)));
  r.body = xml;
  r.headers.push_back({"Content-Type", "application/xml"});
  absl::StatusOr<http::Response> got = http::Send(r);
  if (!got.ok()) return got.status();
  // S3 may answer 200 with an <Error> body.
  if (got->status / 100 != 2 || absl::StrContains(got->body, "<Error>")) {
    return S3Error(got->status, got->body,
                   absl::StrCat("completing the upload of s3://", bucket, "/", key));
  }
  return absl::OkStatus();
}

absl::Status S3Client::AbortMultipart(const std::string& bucket,
                                      const std::string& key,
                                      const std::string& upload_id) {
  http::Request r = Signed(
      config_, "DELETE",
      absl::StrCat(config_.endpoint, ObjectPath(bucket, key),
                   "?uploadId=", http::UriEncode(upload_id, false)));
  absl::StatusOr<http::Response> got = http::Send(r);
  if (!got.ok()) return got.status();
  if (got->status / 100 != 2 && got->status != 404) {
    return S3Error(got->status, got->body, "aborting an upload");
  }
  return absl::OkStatus();
}

absl::Status S3Client::PutSmall(const std::string& bucket,
                                const std::string& key, const std::string& body,
                                const std::string& content_type) {
  http::Request r = Signed(config_, "PUT",
                           config_.endpoint + ObjectPath(bucket, key));
  r.body = body;
  r.headers.push_back({"Content-Type", content_type});
  r.headers.push_back({"x-amz-meta-sha256", Sha256Hex(body)});
  absl::StatusOr<http::Response> got = http::Send(r);
  if (!got.ok()) return got.status();
  if (got->status / 100 != 2) {
    return S3Error(got->status, got->body,
                   absl::StrCat("PUT s3://", bucket, "/", key));
  }
  return absl::OkStatus();
}

absl::StatusOr<std::string> S3Client::GetSmall(const std::string& bucket,
                                               const std::string& key) {
  http::Request r = Signed(config_, "GET",
                           config_.endpoint + ObjectPath(bucket, key));
  r.max_body = 256 << 20;
  absl::StatusOr<http::Response> got = http::Send(r);
  if (!got.ok()) return got.status();
  if (got->status / 100 != 2) {
    return S3Error(got->status, got->body,
                   absl::StrCat("GET s3://", bucket, "/", key));
  }
  return got->body;
}

absl::StatusOr<std::string> S3Client::GetToFile(
    const std::string& bucket, const std::string& key,
    const std::filesystem::path& path, absl::Time deadline) {
  http::Request r = Signed(config_, "GET",
                           config_.endpoint + ObjectPath(bucket, key));
  r.download_to = path;
  r.deadline = deadline;
  absl::StatusOr<http::Response> got = http::Send(r);
  if (!got.ok()) return got.status();
  if (got->status / 100 != 2) {
    return S3Error(got->status, got->body,
                   absl::StrCat("GET s3://", bucket, "/", key));
  }
  return got->sha256;
}

std::string S3Client::PresignPut(const std::string& bucket,
                                 const std::string& key,
                                 const std::string& sha256,
                                 absl::Duration expires) {
  return PresignV4("PUT", scheme_, host_, ObjectPath(bucket, key), {},
                   {{"x-amz-meta-sha256", sha256}}, config_.region,
                   config_.access_key, config_.secret_key,
                   config_.session_token, absl::Now(), expires);
}

std::string S3Client::PresignUploadPart(const std::string& bucket,
                                        const std::string& key,
                                        const std::string& upload_id,
                                        int part_number,
                                        absl::Duration expires) {
  return PresignV4("PUT", scheme_, host_, ObjectPath(bucket, key),
                   {{"partNumber", absl::StrCat(part_number)},
                    {"uploadId", upload_id}},
                   {}, config_.region, config_.access_key, config_.secret_key,
                   config_.session_token, absl::Now(), expires);
}

}  // namespace labtrace::controller
