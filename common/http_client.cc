#include "common/http_client.h"

#include <curl/curl.h>

#include <algorithm>
#include <cctype>
#include <fstream>
#include <mutex>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/strip.h"
#include "common/file_util.h"

namespace labtrace::http {
namespace {

struct Transfer {
  const Request* req = nullptr;
  Response* resp = nullptr;
  std::ifstream in;
  std::uint64_t left = 0;  // Upload bytes still to send.
  std::ofstream out;
  std::unique_ptr<Sha256> digest;
  bool write_failed = false;
  bool cancelled = false;
  bool past_deadline = false;
};

size_t ReadBody(char* buf, size_t size, size_t n, void* p) {
  auto* t = static_cast<Transfer*>(p);
  const std::uint64_t want = std::min<std::uint64_t>(size * n, t->left);
  if (want == 0) return 0;
  t->in.read(buf, static_cast<std::streamsize>(want));
  const auto got = static_cast<std::uint64_t>(t->in.gcount());
  if (got == 0) return CURL_READFUNC_ABORT;  // The file shrank.
  t->left -= got;
  return static_cast<size_t>(got);
}

size_t WriteBody(char* buf, size_t size, size_t n, void* p) {
  auto* t = static_cast<Transfer*>(p);
  const size_t len = size * n;
  t->resp->bytes_received += len;
  if (t->req->download_to && t->resp->status / 100 == 2) {
    t->out.write(buf, static_cast<std::streamsize>(len));
    if (!t->out) {
      t->write_failed = true;
      return 0;  // Aborts the transfer.
    }
    t->digest->Update(absl::string_view(buf, len));
    return len;
  }
  // Error answers (and small bodies) stay in memory, capped.
  const size_t room = t->req->max_body > t->resp->body.size()
                          ? t->req->max_body - t->resp->body.size()
                          : 0;
  t->resp->body.append(buf, std::min(room, len));
  return len;
}

size_t Header(char* buf, size_t size, size_t n, void* p) {
  auto* t = static_cast<Transfer*>(p);
  const size_t len = size * n;
  absl::string_view line(buf, len);
  line = absl::StripTrailingAsciiWhitespace(line);
  if (absl::StartsWith(line, "HTTP/")) {
    // A new response (after a 100 Continue or a redirect): start over.
    t->resp->headers.clear();
    const size_t sp = line.find(' ');
    if (sp != absl::string_view::npos) {
      t->resp->status = std::strtol(std::string(line.substr(sp + 1, 3)).c_str(),
                                    nullptr, 10);
    }
    return len;
  }
  const size_t colon = line.find(':');
  if (colon != absl::string_view::npos) {
    t->resp->headers[absl::AsciiStrToLower(line.substr(0, colon))] =
        std::string(absl::StripAsciiWhitespace(line.substr(colon + 1)));
  }
  return len;
}

int Progress(void* p, curl_off_t, curl_off_t, curl_off_t, curl_off_t ulnow) {
  auto* t = static_cast<Transfer*>(p);
  if (t->req->on_progress && ulnow > 0) {
    t->req->on_progress(static_cast<std::uint64_t>(ulnow));
  }
  if (t->req->cancelled && t->req->cancelled()) {
    t->cancelled = true;
    return 1;
  }
  if (absl::Now() > t->req->deadline) {
    t->past_deadline = true;
    return 1;
  }
  return 0;
}

long Millis(absl::Duration d) {
  return static_cast<long>(
      std::max<std::int64_t>(1, absl::ToInt64Milliseconds(d)));
}

}  // namespace

std::string Response::Header(const std::string& lower_name) const {
  auto it = headers.find(lower_name);
  return it == headers.end() ? std::string() : it->second;
}

void GlobalInit() {
  static std::once_flag once;
  std::call_once(once, [] { curl_global_init(CURL_GLOBAL_DEFAULT); });
}

std::string DescribeAnswer(long status, const std::string& body) {
  auto value = [&body](const std::string& tag) -> std::string {
    const std::string open = absl::StrCat("<", tag, ">");
    const size_t a = body.find(open);
    if (a == std::string::npos) return "";
    const size_t b = body.find(absl::StrCat("</", tag, ">"), a);
    if (b == std::string::npos) return "";
    return body.substr(a + open.size(), b - a - open.size());
  };
  std::string out = absl::StrCat("HTTP ", status);
  const std::string code = value("Code");
  if (!code.empty()) absl::StrAppend(&out, " ", code);
  const std::string message = value("Message");
  if (!message.empty()) absl::StrAppend(&out, ": ", message);
  return out;
}

std::string UriEncode(const std::string& s, bool keep_slash) {
  std::string out;
  out.reserve(s.size() * 3 / 2);
  for (unsigned char c : s) {
    if (std::isalnum(c) || c == '-' || c == '_' || c == '.' || c == '~' ||
        (keep_slash && c == '/')) {
      out.push_back(static_cast<char>(c));
    } else {
      absl::StrAppendFormat(&out, "%%%02X", c);
    }
  }
  return out;
}

absl::StatusOr<Response> Send(const Request& req) {
  GlobalInit();
  Response resp;
  Transfer t;
  t.req = &req;
  t.resp = &resp;
  std::unique_ptr<CURL, void (*)(CURL*)> curl(curl_easy_init(),
                                              curl_easy_cleanup);
  if (curl == nullptr) return absl::InternalError("curl_easy_init failed");
  CURL* c = curl.get();
  char error[CURL_ERROR_SIZE] = {0};
  curl_easy_setopt(c, CURLOPT_ERRORBUFFER, error);
  curl_easy_setopt(c, CURLOPT_URL, req.url.c_str());
  curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, Millis(req.connect_timeout));
  curl_easy_setopt(c, CURLOPT_LOW_SPEED_LIMIT, 1L);
  curl_easy_setopt(c, CURLOPT_LOW_SPEED_TIME,
                   std::max<long>(1, static_cast<long>(absl::ToInt64Seconds(
                                         req.stall_timeout))));
  if (req.deadline != absl::InfiniteFuture()) {
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS,
                     Millis(req.deadline - absl::Now()));
  }
  curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, &Header);
  curl_easy_setopt(c, CURLOPT_HEADERDATA, &t);
  curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, &WriteBody);
  curl_easy_setopt(c, CURLOPT_WRITEDATA, &t);
  curl_easy_setopt(c, CURLOPT_NOPROGRESS, 0L);
  curl_easy_setopt(c, CURLOPT_XFERINFOFUNCTION, &Progress);
  curl_easy_setopt(c, CURLOPT_XFERINFODATA, &t);
  curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
#ifdef _WIN32
  // The Windows certificate store (the mingw/vcpkg libcurl has no CA file).
  curl_easy_setopt(c, CURLOPT_SSL_OPTIONS, static_cast<long>(CURLSSLOPT_NATIVE_CA));
#endif

  if (req.upload) {
    t.in.open(req.upload->path, std::ios::binary);
    if (!t.in) {
      return absl::NotFoundError(
          absl::StrCat("cannot open ", PathToUtf8(req.upload->path)));
    }
    t.in.seekg(static_cast<std::streamoff>(req.upload->offset));
    t.left = req.upload->length;
    curl_easy_setopt(c, CURLOPT_UPLOAD, 1L);
    curl_easy_setopt(c, CURLOPT_READFUNCTION, &ReadBody);
    curl_easy_setopt(c, CURLOPT_READDATA, &t);
    curl_easy_setopt(c, CURLOPT_INFILESIZE_LARGE,
                     static_cast<curl_off_t>(req.upload->length));
    if (req.method != "PUT") {
      curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, req.method.c_str());
    }
  } else if (req.method == "HEAD") {
    curl_easy_setopt(c, CURLOPT_NOBODY, 1L);
  } else if (req.method == "GET") {
    curl_easy_setopt(c, CURLOPT_HTTPGET, 1L);
  } else {
    curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, req.method.c_str());
    curl_easy_setopt(c, CURLOPT_POSTFIELDS, req.body.data());
    curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE,
                     static_cast<curl_off_t>(req.body.size()));
  }
  if (req.download_to) {
    t.out.open(*req.download_to, std::ios::binary | std::ios::trunc);
    if (!t.out) {
      return absl::PermissionDeniedError(
          absl::StrCat("cannot write ", PathToUtf8(*req.download_to)));
    }
    t.digest = std::make_unique<Sha256>();
  }
  std::unique_ptr<curl_slist, void (*)(curl_slist*)> headers(
      nullptr, curl_slist_free_all);
  curl_slist* list = nullptr;
  for (const auto& [k, v] : req.headers) {
    list = curl_slist_append(list, absl::StrCat(k, ": ", v).c_str());
  }
  // No "Expect: 100-continue" round trip before each part. (Not with
  // curl's SigV4, which would sign the suppressed header too.)
  if (req.aws_sigv4.empty()) list = curl_slist_append(list, "Expect:");
  headers.reset(list);
  curl_easy_setopt(c, CURLOPT_HTTPHEADER, list);
  if (!req.aws_sigv4.empty()) {
    curl_easy_setopt(c, CURLOPT_AWS_SIGV4, req.aws_sigv4.c_str());
    curl_easy_setopt(c, CURLOPT_USERPWD, req.aws_userpwd.c_str());
  }

  const CURLcode rc = curl_easy_perform(c);
  curl_off_t sent = 0;
  curl_easy_getinfo(c, CURLINFO_SIZE_UPLOAD_T, &sent);
  resp.bytes_sent = static_cast<std::uint64_t>(sent);
  long status = 0;
  curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
  if (status != 0) resp.status = status;
  if (req.download_to) {
    t.out.close();
    if (t.write_failed || !t.out) {
      return absl::ResourceExhaustedError(
          absl::StrCat("writing ", PathToUtf8(*req.download_to),
                       " failed (disk full?)"));
    }
    resp.sha256 = t.digest->HexDigest();
  }
  if (rc != CURLE_OK) {
    const std::string what = absl::StrCat(
        req.method, " ", req.url.substr(0, req.url.find('?')), ": ",
        error[0] != '\0' ? error : curl_easy_strerror(rc));
    if (t.cancelled) return absl::CancelledError(absl::StrCat(what, " (cancelled)"));
    if (t.past_deadline || rc == CURLE_OPERATION_TIMEDOUT) {
      return absl::DeadlineExceededError(what);
    }
    return absl::UnavailableError(what);
  }
  return resp;
}

}  // namespace labtrace::http
