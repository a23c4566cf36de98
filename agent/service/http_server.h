// HttpServer: the small, hardened HTTP/1.1 server under the agent's REST
// mirror, on Boost.Beast and Asio (header-only, Debian libboost-dev; Beast
// replaced cpp-httplib 0.11, which served one request per thread from a
// pool of eight, so eight idle connections blocked everyone, and which
// answered its own errors with empty bodies).
//
// What it promises:
//  - Nothing waits for a slow peer on a thread: all socket I/O is
//    asynchronous on a few I/O threads (TLS handshakes included).
//  - Every connection has deadlines: the TLS handshake, a request's headers
//    (header_timeout from the first byte the server waits for: slowloris
//    connections are closed), its body, the idle time between keep-alive
//    requests, and a response the client stops reading (write_stall_timeout).
//  - Bounded: at most max_connections at once (more are answered 503 and
//    closed), headers at most max_header_bytes (431), bodies at most
//    max_body_bytes (413).
//  - Every error the server itself answers (400, 408, 413, 431, 503) has the
//    body the caller's error_body gives (the REST gateway's JSON).
//  - A request without a body (no Content-Length) is complete at once.
//  - Files are served from the page cache with sendfile where possible
//    (plain TCP on Linux), else read and written in chunks; a single byte
//    range is honoured by the caller (HttpResponse::file).
//  - The handler learns when its client has gone (HttpRequest::client_gone),
//    so a long call can stop early.
//
// Threading: the handler is called on an I/O thread and must not block: it
// answers through `respond` (exactly once, from any thread), typically after
// running the work on one of the agent's pools.

#ifndef LABTRACE_AGENT_SERVICE_HTTP_SERVER_H_
#define LABTRACE_AGENT_SERVICE_HTTP_SERVER_H_

#include <atomic>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "agent/config/agent_config.h"

namespace labtrace::agent {

struct HttpLimits {
  int max_connections = 256;
  std::size_t max_header_bytes = 16 * 1024;
  std::size_t max_body_bytes = 1 << 20;
  absl::Duration handshake_timeout = absl::Seconds(10);
  absl::Duration header_timeout = absl::Seconds(10);
  absl::Duration body_timeout = absl::Seconds(30);
  absl::Duration idle_timeout = absl::Seconds(30);
  absl::Duration write_stall_timeout = absl::Seconds(60);
  int io_threads = 2;
};

struct HttpRequest {
  std::string method;  // "GET", "POST", ...
  std::string path;    // The target before '?', still percent-encoded.
  std::map<std::string, std::string> query;  // Decoded.
  // Header names in lower case.
  std::map<std::string, std::string> headers;
  std::string body;
  std::string peer;           // "rest:10.0.0.5:51234".
  std::string cert_identity;  // The client certificate's CN under mTLS.
  // True once the client has closed its connection (safe from any thread).
  std::function<bool()> client_gone;

  std::string Header(const std::string& lower_name) const {
    auto it = headers.find(lower_name);
    return it == headers.end() ? "" : it->second;
  }
};

struct HttpFile {
  std::filesystem::path path;
  std::uint64_t offset = 0;
  std::uint64_t length = 0;
  // Called with every chunk's size as it is sent (metrics).
  std::function<void(std::uint64_t)> on_bytes;
  // Called once when the response ends: whole (true) or cut off (false),
  // and the bytes sent (audit; of the file, before any compression).
  std::function<void(bool, std::uint64_t)> on_done;
  // Set: the body is one zstd stream of the file's bytes at this level,
  // sent with chunked transfer encoding (the caller sets
  // Content-Encoding: zstd).
  std::optional<int> zstd_level;
};

struct HttpResponse {
  int status = 200;
  std::string content_type = "application/json";
  std::vector<std::pair<std::string, std::string>> headers;
  std::string body;
  std::optional<HttpFile> file;  // Sent instead of `body`.
};

using HttpRespond = std::function<void(HttpResponse)>;
using HttpHandler = std::function<void(HttpRequest, HttpRespond)>;
// The response for the server's own errors (status, message).
using HttpErrorBody = std::function<HttpResponse(int, const std::string&)>;

class HttpServer {
 public:
  // Binds `listen` ("host:port"; port 0 picks one), with TLS (and client
  // certificates) if configured, and starts serving.
  static absl::StatusOr<std::unique_ptr<HttpServer>> Start(
      const std::string& listen, const TlsConfig& tls, HttpLimits limits,
      HttpHandler handler, HttpErrorBody error_body);
  // Stop().
  ~HttpServer();
  HttpServer(const HttpServer&) = delete;
  HttpServer& operator=(const HttpServer&) = delete;

  int port() const;
  int connections() const;
  // Closes the listener and every connection and joins the I/O threads.
  void Stop();

  struct Impl;

 private:
  HttpServer() = default;
  // Shared with the connections: they may outlive Stop() in a pool task's
  // closure, and their I/O context must outlive them.
  std::shared_ptr<Impl> shared_;
};

// Percent-decodes a URL component ('+' stays '+'). False on a bad escape.
bool PercentDecode(const std::string& in, std::string* out);

}  // namespace labtrace::agent

#endif  // LABTRACE_AGENT_SERVICE_HTTP_SERVER_H_
