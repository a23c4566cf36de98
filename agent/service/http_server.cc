#include "agent/service/http_server.h"

#include <openssl/ssl.h>
#include <openssl/x509.h>

#include <algorithm>
#include <boost/asio.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl.hpp>
#include <mutex>
#include <thread>

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "common/file_util.h"
#include "common/send_file.h"
#include "common/zstd_codec.h"
#include "spdlog/spdlog.h"

namespace labtrace::agent {

namespace beast = boost::beast;
namespace http = boost::beast::http;
namespace net = boost::asio;
namespace ssl = boost::asio::ssl;
using tcp = boost::asio::ip::tcp;

bool PercentDecode(const std::string& in, std::string* out) {
  out->clear();
  for (std::size_t i = 0; i < in.size(); ++i) {
    if (in[i] != '%') {
      out->push_back(in[i]);
      continue;
    }
    if (i + 2 >= in.size() || !absl::ascii_isxdigit(in[i + 1]) ||
        !absl::ascii_isxdigit(in[i + 2])) {
      return false;
    }
    int v = 0;
    if (!absl::SimpleHexAtoi(in.substr(i + 1, 2), &v)) return false;
    out->push_back(static_cast<char>(v));
    i += 2;
  }
  return true;
}

namespace {

std::chrono::steady_clock::duration Chrono(absl::Duration d) {
  return absl::ToChronoNanoseconds(d);
}

class SessionBase {
 public:
  virtual ~SessionBase() = default;
  // Closes the connection on its own strand.
  virtual void PostClose() = 0;
};

}  // namespace

struct HttpServer::Impl : std::enable_shared_from_this<HttpServer::Impl> {
  HttpLimits limits;
  HttpHandler handler;
  HttpErrorBody error_body;
  net::io_context ioc;
  std::optional<ssl::context> tls;
  tcp::acceptor acceptor{ioc};
  net::steady_timer retry_accept{ioc};
  std::vector<std::thread> threads;
  std::atomic<int> connections{0};
  std::atomic<bool> stopping{false};
  std::mutex mu;
  std::vector<std::weak_ptr<SessionBase>> sessions;  // Guarded by mu.
  int port = 0;

  void Accept();
  void Track(const std::shared_ptr<SessionBase>& s) {
    std::lock_guard<std::mutex> lock(mu);
    std::erase_if(sessions, [](const auto& w) { return w.expired(); });
    sessions.push_back(s);
  }
};

namespace {

// One connection. Stream is beast::tcp_stream or
// beast::ssl_stream<beast::tcp_stream>. Everything runs on the connection's
// strand (the stream's executor).
template <class Stream>
class Session final : public SessionBase,
                      public std::enable_shared_from_this<Session<Stream>> {
 public:
  Session(std::shared_ptr<HttpServer::Impl> server, Stream stream,
          std::string peer)
      : server_(std::move(server)),
        stream_(std::move(stream)),
        stall_timer_(stream_.get_executor()),
        peer_(std::move(peer)) {
    ++server_->connections;
  }
  ~Session() override { --server_->connections; }

  void Run() {
    if constexpr (kTls) {
      Lowest().expires_after(Chrono(server_->limits.handshake_timeout));
      stream_.async_handshake(
          ssl::stream_base::server,
          [self = this->shared_from_this()](beast::error_code ec) {
            if (ec) return self->Close();
            self->cert_identity_ = PeerCn(self->stream_.native_handle());
            self->ReadHeader();
          });
    } else {
      ReadHeader();
    }
  }

  // Answers 503 at once and closes (too many connections).
  void Reject(const std::string& why) {
    if constexpr (kTls) {
      Close();  // No handshake for a connection that is turned away.
    } else {
      SendError(503, why);
    }
  }

  void PostClose() override {
    net::post(stream_.get_executor(),
              [self = this->shared_from_this()] { self->Close(); });
  }

  void Close() {
    FileDone(false);
    beast::error_code ec;
    Lowest().socket().shutdown(tcp::socket::shutdown_both, ec);
    Lowest().socket().close(ec);
    stall_timer_.cancel();
  }

 private:
  static constexpr bool kTls = !std::is_same_v<Stream, beast::tcp_stream>;

  beast::tcp_stream& Lowest() { return beast::get_lowest_layer(stream_); }

  static std::string PeerCn(SSL* ssl) {
    X509* cert = SSL_get_peer_certificate(ssl);
    if (cert == nullptr) return "";
    char cn[256] = {};
    X509_NAME_get_text_by_NID(X509_get_subject_name(cert), NID_commonName, cn,
                              sizeof(cn) - 1);
    X509_free(cert);
    return cn;
  }

  void ReadHeader() {
    parser_.emplace();
    parser_->header_limit(
        static_cast<std::uint32_t>(server_->limits.max_header_bytes));
    parser_->body_limit(server_->limits.max_body_bytes);
    // The first request gets header_timeout; later ones on a kept-alive
    // connection the idle timeout (the wait for the next request included).
    Lowest().expires_after(Chrono(first_ ? server_->limits.header_timeout
                                         : server_->limits.idle_timeout));
    http::async_read_header(
        stream_, buffer_, *parser_,
        [self = this->shared_from_this()](beast::error_code ec, std::size_t n) {
          self->OnHeader(ec, n);
        });
  }

  // The server's own error answer for a read that failed; false: just close.
  bool AnswerReadError(beast::error_code ec, bool started) {
    if (ec == http::error::header_limit) {
      SendError(431, absl::StrCat("request headers larger than ",
                                  server_->limits.max_header_bytes, " bytes"));
    } else if (ec == http::error::body_limit) {
      SendError(413, absl::StrCat("request body larger than ",
                                  server_->limits.max_body_bytes, " bytes"));
    } else if (ec == beast::error::timeout) {
      if (!started) return false;  // An idle connection: just close it.
      SendError(408, "the request did not arrive in time");
    } else if (ec.category() ==
                   http::make_error_code(http::error::bad_method).category() &&
               ec != http::error::end_of_stream &&
               ec != http::error::partial_message) {
      SendError(400, absl::StrCat("malformed request: ", ec.message()));
    } else {
      return false;  // The peer went away, or reset the connection.
    }
    return true;
  }

  void OnHeader(beast::error_code ec, std::size_t n) {
    if (ec) {
      const bool started = n > 0 || buffer_.size() > 0 || parser_->got_some();
      if (!AnswerReadError(ec, started)) Close();
      return;
    }
    if (parser_->is_done()) return OnRequest();
    Lowest().expires_after(Chrono(server_->limits.body_timeout));
    http::async_read(
        stream_, buffer_, *parser_,
        [self = this->shared_from_this()](beast::error_code ec, std::size_t) {
          if (ec) {
            if (!self->AnswerReadError(ec, true)) self->Close();
            return;
          }
          self->OnRequest();
        });
  }

  void OnRequest() {
    first_ = false;
    http::request<http::string_body>& req = parser_->get();
    keep_alive_ = req.keep_alive();
    HttpRequest r;
    r.method = std::string(req.method_string());
    head_ = req.method() == http::verb::head;
    const std::string target(req.target());
    const std::size_t q = target.find('?');
    r.path = target.substr(0, q);
    if (q != std::string::npos) {
      for (absl::string_view kv :
           absl::StrSplit(target.substr(q + 1), '&', absl::SkipEmpty())) {
        const std::size_t eq = kv.find('=');
        std::string k, v;
        if (!PercentDecode(std::string(kv.substr(0, eq)), &k) ||
            !PercentDecode(eq == absl::string_view::npos
                               ? std::string()
                               : std::string(kv.substr(eq + 1)),
                           &v)) {
          return SendError(400, "malformed query string");
        }
        r.query[k] = v;
      }
    }
    for (const auto& f : req) {
      std::string name(f.name_string());
      absl::AsciiStrToLower(&name);
      r.headers[name] = std::string(f.value());
    }
    r.body = std::move(req.body());
    r.peer = peer_;
    r.cert_identity = cert_identity_;
    r.client_gone = [gone = gone_] { return gone->load(); };
    Lowest().expires_never();
    Watch();
    // The handler's answer keeps the connection alive until it comes (the
    // handler answers exactly once).
    auto executor = stream_.get_executor();
    server_->handler(std::move(r), [self = this->shared_from_this(),
                                    executor](HttpResponse resp) {
      // After Stop nothing runs the I/O loop: drop the answer (and with it
      // the connection) instead of queueing it forever.
      if (self->server_->stopping) return;
      net::post(executor, [self, resp = std::move(resp)]() mutable {
        self->Respond(std::move(resp));
      });
    });
  }

  // While the handler works: notice a client that closes its connection.
  // Each request's watch has its own number: a cancelled watch of an
  // earlier request, completing late, must not touch the current one.
  void Watch() {
    watching_ = true;
    ArmWatch(++watch_);
  }

  void ArmWatch(std::uint64_t watch) {
    Lowest().socket().async_wait(
        tcp::socket::wait_read,
        [self = this->shared_from_this(), watch](beast::error_code ec) {
          if (watch != self->watch_) return;  // A finished request's watch.
          if (ec) {  // Cancelled: the answer is ready.
            self->watching_ = false;
            return;
          }
          // Never block the strand: peek without waiting.
          tcp::socket& socket = self->Lowest().socket();
          beast::error_code peek_ec;
          const bool was_non_blocking = socket.non_blocking();
          socket.non_blocking(true, peek_ec);
          char byte;
          const std::size_t n = socket.receive(net::buffer(&byte, 1),
                                               tcp::socket::message_peek, peek_ec);
          beast::error_code restore_ec;
          socket.non_blocking(was_non_blocking, restore_ec);
          if (peek_ec == net::error::would_block) {
            return self->ArmWatch(watch);  // A spurious wake-up.
          }
          self->watching_ = false;
          if (peek_ec || n == 0) self->gone_->store(true);
          // Data (a pipelined request, TLS records): left for the next read.
        });
  }

  void Respond(HttpResponse resp) {
    ++watch_;  // The watch, if still pending, is finished.
    if (watching_) {
      watching_ = false;
      beast::error_code ec;
      Lowest().socket().cancel(ec);
    }
    if (gone_->load()) return Close();
    if (head_) return SendHead(std::move(resp));
    if (resp.file) return SendFile(std::move(resp));
    SendString(std::move(resp));
  }

  // HEAD: the GET answer's headers (Content-Length included), no body.
  void SendHead(HttpResponse resp) {
    auto res = std::make_shared<http::response<http::empty_body>>(
        static_cast<http::status>(resp.status), 11);
    res->set(http::field::server, "labtrace-agent");
    res->set(http::field::content_type, resp.content_type);
    for (const auto& [k, v] : resp.headers) res->set(k, v);
    res->content_length(resp.file ? resp.file->length : resp.body.size());
    res->keep_alive(keep_alive_);
    Lowest().expires_after(Chrono(server_->limits.write_stall_timeout));
    http::async_write(
        stream_, *res,
        [self = this->shared_from_this(), res](beast::error_code ec,
                                               std::size_t) {
          self->AfterResponse(ec);
        });
  }

  void SendError(int status, const std::string& message) {
    keep_alive_ = false;
    linger_ = true;  // The request may not have been read to its end.
    SendString(server_->error_body(status, message));
  }

  // After an error answer to a request that was not read to its end (a
  // body over the limit): closing at once, with its bytes unread, makes the
  // kernel reset the connection, and the client may lose the answer. So:
  // no more sending, read and drop what still comes for up to 2 s, then
  // close.
  void LingerClose() {
    beast::error_code ec;
    Lowest().socket().shutdown(tcp::socket::shutdown_send, ec);
    if (ec) return Close();
    Lowest().expires_after(std::chrono::seconds(2));
    Drain();
  }

  void Drain() {
    drain_.resize(16 << 10);
    Lowest().async_read_some(
        net::buffer(drain_),
        [self = this->shared_from_this()](beast::error_code ec, std::size_t) {
          if (ec) return self->Close();  // EOF, reset, or the 2 s are up.
          self->Drain();
        });
  }

  void SendString(HttpResponse resp) {
    auto res = std::make_shared<http::response<http::string_body>>(
        static_cast<http::status>(resp.status), 11);
    res->set(http::field::server, "labtrace-agent");
    res->set(http::field::content_type, resp.content_type);
    for (const auto& [k, v] : resp.headers) res->set(k, v);
    res->body() = std::move(resp.body);
    res->keep_alive(keep_alive_);
    res->prepare_payload();
    // A 304 has no body; a Content-Length on it would have to be the
    // whole file's (RFC 9110, 8.6), so it has none.
    if (resp.status == 304) res->erase(http::field::content_length);
    Lowest().expires_after(Chrono(server_->limits.write_stall_timeout));
    http::async_write(
        stream_, *res,
        [self = this->shared_from_this(), res](beast::error_code ec,
                                               std::size_t) {
          self->AfterResponse(ec);
        });
  }

  void AfterResponse(beast::error_code ec) {
    FileDone(!ec);
    if (!ec && linger_ && !kTls && !server_->stopping) return LingerClose();
    if (ec || !keep_alive_ || server_->stopping) return Close();
    ReadHeader();
  }

  // Reports the end of a file response, once.
  void FileDone(bool whole) {
    in_.Close();  // An idle keep-alive connection holds no file open.
    zstd_.reset();
    if (!file_.on_done) return;
    auto done = std::move(file_.on_done);
    file_.on_done = nullptr;
    done(whole && remaining_ == 0, file_.length - remaining_);
  }

  void SendFile(HttpResponse resp) {
    file_ = HttpFile(*resp.file);
    std::string error;
    if (!in_.Open(file_.path, &error)) {
      return SendError(500, absl::StrCat("cannot open the file: ", error));
    }
    header_ = std::make_unique<http::response<http::empty_body>>(
        static_cast<http::status>(resp.status), 11);
    header_->set(http::field::server, "labtrace-agent");
    header_->set(http::field::content_type, resp.content_type);
    for (const auto& [k, v] : resp.headers) header_->set(k, v);
    if (file_.zstd_level) {
      header_->chunked(true);  // The compressed size is not known yet.
      zstd_ = std::make_unique<zstd::Stream>(*file_.zstd_level);
    } else {
      header_->content_length(file_.length);
    }
    header_->keep_alive(keep_alive_);
    serializer_ =
        std::make_unique<http::response_serializer<http::empty_body>>(*header_);
    offset_ = file_.offset;
    remaining_ = file_.length;
    Lowest().expires_after(Chrono(server_->limits.write_stall_timeout));
    http::async_write_header(
        stream_, *serializer_,
        [self = this->shared_from_this()](beast::error_code ec, std::size_t) {
          if (ec) return self->Close();
          if (self->zstd_ != nullptr) {
            self->SendZstd();
          } else if (!kTls && send_file::Supported()) {
            self->Lowest().expires_never();
            self->SendZeroCopy();
          } else {
            self->SendChunks();
          }
        });
  }

  // Plain TCP on Linux: sendfile from the page cache; when the socket is
  // full, wait until it is writable (a client that never drains it is cut
  // off after write_stall_timeout).
  void SendZeroCopy() {
    tcp::socket& socket = Lowest().socket();
    beast::error_code ec;
    socket.non_blocking(true, ec);
    while (remaining_ > 0) {
      std::size_t sent = 0;
      std::string error;
      const send_file::Result r = send_file::SendChunk(
          static_cast<std::intptr_t>(socket.native_handle()), in_, &offset_,
          static_cast<std::size_t>(std::min<std::uint64_t>(remaining_, 8 << 20)),
          &sent, &error);
      if (r == send_file::Result::kSent) {
        remaining_ -= sent;
        if (file_.on_bytes) file_.on_bytes(sent);
        continue;
      }
      if (r == send_file::Result::kWouldBlock) {
        stall_timer_.expires_after(
            Chrono(server_->limits.write_stall_timeout));
        stall_timer_.async_wait(
            [self = this->shared_from_this()](beast::error_code ec) {
              if (!ec) self->Close();  // Stalled: the client reads nothing.
            });
        socket.async_wait(
            tcp::socket::wait_write,
            [self = this->shared_from_this()](beast::error_code ec) {
              self->stall_timer_.cancel();
              if (ec) return self->Close();
              self->SendZeroCopy();
            });
        return;
      }
      spdlog::warn("REST download to {}: {}", peer_, error);
      return Close();
    }
    socket.non_blocking(false, ec);
    AfterResponse(beast::error_code());
  }

  // Content-Encoding: zstd: read a piece, compress (flushed, so the client
  // gets data as it goes), send it as one HTTP chunk; the last chunk closes
  // the zstd stream, then the chunked body ends.
  void SendZstd() {
    std::string error;
    if (remaining_ == 0) {
      absl::Status s = zstd_->End(&packed_);
      if (!s.ok()) {
        spdlog::warn("REST download to {}: {}", peer_, s.ToString());
        return Close();
      }
      zstd_.reset();
      return WriteZstdPiece(/*last=*/true);
    }
    chunk_.resize(static_cast<std::size_t>(
        std::min<std::uint64_t>(remaining_, 1 << 20)));
    const std::int64_t n = in_.ReadAt(offset_, chunk_.data(), chunk_.size());
    if (n <= 0) {
      spdlog::warn("REST download to {}: the file ended early", peer_);
      return Close();
    }
    absl::Status s = zstd_->Add(chunk_.data(), static_cast<std::size_t>(n), &packed_);
    if (!s.ok()) {
      spdlog::warn("REST download to {}: {}", peer_, s.ToString());
      return Close();
    }
    offset_ += static_cast<std::uint64_t>(n);
    remaining_ -= static_cast<std::uint64_t>(n);
    if (file_.on_bytes) file_.on_bytes(static_cast<std::uint64_t>(n));
    WriteZstdPiece(/*last=*/false);
  }

  void WriteZstdPiece(bool last) {
    Lowest().expires_after(Chrono(server_->limits.write_stall_timeout));
    auto then = [self = this->shared_from_this(), last](beast::error_code ec,
                                                        std::size_t) {
      if (ec) return self->Close();
      if (!last) return self->SendZstd();
      self->WriteLastChunk();
    };
    if (packed_.empty()) {
      // A flush that produced nothing: no empty chunk (it would end the body).
      return net::post(stream_.get_executor(),
                       [then]() mutable { then(beast::error_code(), 0); });
    }
    net::async_write(stream_, http::make_chunk(net::buffer(packed_)),
                     std::move(then));
  }

  void WriteLastChunk() {
    net::async_write(
        stream_, http::make_chunk_last(),
        [self = this->shared_from_this()](beast::error_code ec, std::size_t) {
          self->AfterResponse(ec);
        });
  }

  // TLS, or no sendfile: read a chunk, write it, repeat.
  void SendChunks() {
    if (remaining_ == 0) return AfterResponse(beast::error_code());
    chunk_.resize(static_cast<std::size_t>(
        std::min<std::uint64_t>(remaining_, 512 << 10)));
    const std::int64_t n = in_.ReadAt(offset_, chunk_.data(), chunk_.size());
    if (n <= 0) {
      spdlog::warn("REST download to {}: the file ended early", peer_);
      return Close();
    }
    Lowest().expires_after(Chrono(server_->limits.write_stall_timeout));
    net::async_write(
        stream_, net::buffer(chunk_.data(), static_cast<std::size_t>(n)),
        [self = this->shared_from_this()](beast::error_code ec, std::size_t k) {
          if (ec) return self->Close();
          self->offset_ += k;
          self->remaining_ -= k;
          if (self->file_.on_bytes) self->file_.on_bytes(k);
          self->SendChunks();
        });
  }

  std::shared_ptr<HttpServer::Impl> server_;
  Stream stream_;
  net::steady_timer stall_timer_;
  const std::string peer_;
  std::string cert_identity_;
  beast::flat_buffer buffer_;
  std::optional<http::request_parser<http::string_body>> parser_;
  bool first_ = true;
  bool keep_alive_ = false;
  bool watching_ = false;
  std::uint64_t watch_ = 0;  // The current request's watch.
  bool head_ = false;        // The current request is HEAD.
  bool linger_ = false;      // Close gently after an error answer.
  std::vector<char> drain_;
  std::shared_ptr<std::atomic<bool>> gone_ =
      std::make_shared<std::atomic<bool>>(false);
  // A file response in flight.
  HttpFile file_;
  send_file::File in_;
  std::unique_ptr<http::response<http::empty_body>> header_;
  std::unique_ptr<http::response_serializer<http::empty_body>> serializer_;
  std::uint64_t offset_ = 0;
  std::uint64_t remaining_ = 0;
  std::vector<char> chunk_;
  std::unique_ptr<zstd::Stream> zstd_;  // Content-Encoding: zstd in progress.
  std::string packed_;
};

}  // namespace

void HttpServer::Impl::Accept() {
  acceptor.async_accept(
      net::make_strand(ioc),
      [self = shared_from_this()](beast::error_code ec, tcp::socket socket) {
        if (self->stopping) return;
        if (ec) {
          // EMFILE and the like: wait a little rather than spin.
          spdlog::warn("REST accept failed: {}", ec.message());
          self->retry_accept.expires_after(std::chrono::milliseconds(100));
          self->retry_accept.async_wait([self](beast::error_code e) {
            if (!e && !self->stopping) self->Accept();
          });
          return;
        }
        beast::error_code pe;
        const tcp::endpoint remote = socket.remote_endpoint(pe);
        const std::string peer =
            pe ? "rest:?"
               : absl::StrCat("rest:", remote.address().to_string(), ":",
                              remote.port());
        const bool full =
            self->connections.load() >= self->limits.max_connections;
        if (self->tls) {
          auto s = std::make_shared<Session<beast::ssl_stream<beast::tcp_stream>>>(
              self,
              beast::ssl_stream<beast::tcp_stream>(
                  beast::tcp_stream(std::move(socket)), *self->tls),
              peer);
          self->Track(s);
          full ? s->Reject("") : s->Run();
        } else {
          auto s = std::make_shared<Session<beast::tcp_stream>>(
              self, beast::tcp_stream(std::move(socket)), peer);
          self->Track(s);
          if (full) {
            s->Reject(absl::StrCat("the agent has ", self->limits.max_connections,
                                   " REST connections open, its limit; retry "
                                   "in a moment"));
          } else {
            s->Run();
          }
        }
        self->Accept();
      });
}

absl::StatusOr<std::unique_ptr<HttpServer>> HttpServer::Start(
    const std::string& listen, const TlsConfig& tls, HttpLimits limits,
    HttpHandler handler, HttpErrorBody error_body) {
  const std::size_t colon = listen.rfind(':');
  int port = 0;
  if (colon == std::string::npos ||
      !absl::SimpleAtoi(listen.substr(colon + 1), &port) || port < 0 ||
      port > 65535) {
    return absl::InvalidArgumentError(
        absl::StrCat("REST listen address \"", listen, "\" must be HOST:PORT"));
  }
  std::string host = listen.substr(0, colon);
  if (host.size() > 2 && host.front() == '[' && host.back() == ']') {
    host = host.substr(1, host.size() - 2);
  }
  if (host == "localhost") host = "127.0.0.1";
  auto impl = std::make_shared<Impl>();
  impl->limits = limits;
  impl->handler = std::move(handler);
  impl->error_body = std::move(error_body);
  if (tls.enabled()) {
    impl->tls.emplace(ssl::context::tls_server);
    beast::error_code ec;
    impl->tls->set_options(ssl::context::default_workarounds |
                               ssl::context::no_sslv2 | ssl::context::no_sslv3 |
                               ssl::context::no_tlsv1 | ssl::context::no_tlsv1_1,
                           ec);
    impl->tls->use_certificate_chain_file(PathToUtf8(PathFromUtf8(tls.cert_file)), ec);
    if (!ec) impl->tls->use_private_key_file(tls.key_file, ssl::context::pem, ec);
    if (!ec && !tls.client_ca_file.empty()) {
      impl->tls->load_verify_file(tls.client_ca_file, ec);
      impl->tls->set_verify_mode(
          ssl::verify_peer | ssl::verify_fail_if_no_peer_cert);
    }
    if (ec) {
      return absl::InvalidArgumentError(absl::StrCat(
          "cannot set up TLS for the REST listener from ", tls.cert_file,
          " / ", tls.key_file,
          tls.client_ca_file.empty() ? "" : absl::StrCat(" / ", tls.client_ca_file),
          ": ", ec.message()));
    }
  }
  beast::error_code ec;
  const net::ip::address address = net::ip::make_address(host, ec);
  if (ec) {
    return absl::InvalidArgumentError(absl::StrCat(
        "REST listen address \"", listen, "\": \"", host,
        "\" is not an IP address"));
  }
  const tcp::endpoint endpoint(address, static_cast<unsigned short>(port));
  impl->acceptor.open(endpoint.protocol(), ec);
  if (!ec) impl->acceptor.set_option(net::socket_base::reuse_address(true), ec);
  if (!ec) impl->acceptor.bind(endpoint, ec);
  if (!ec) impl->acceptor.listen(net::socket_base::max_listen_connections, ec);
  if (ec) {
    return absl::UnavailableError(absl::StrCat(
        "cannot listen (REST) on ", listen, ": ", ec.message()));
  }
  impl->port = impl->acceptor.local_endpoint().port();
  impl->Accept();
  for (int i = 0; i < std::max(1, limits.io_threads); ++i) {
    impl->threads.emplace_back([ioc = &impl->ioc] { ioc->run(); });
  }
  std::unique_ptr<HttpServer> server(new HttpServer());
  server->shared_ = std::move(impl);
  return server;
}

HttpServer::~HttpServer() { Stop(); }

int HttpServer::port() const { return shared_->port; }

int HttpServer::connections() const { return shared_->connections.load(); }

void HttpServer::Stop() {
  if (shared_ == nullptr || shared_->stopping.exchange(true)) return;
  net::post(shared_->ioc, [impl = shared_] {
    beast::error_code ec;
    impl->acceptor.close(ec);
    impl->retry_accept.cancel();
  });
  std::vector<std::weak_ptr<SessionBase>> sessions;
  {
    std::lock_guard<std::mutex> lock(shared_->mu);
    sessions = shared_->sessions;
  }
  for (const auto& w : sessions) {
    if (auto s = w.lock()) s->PostClose();
  }
  // The closes run on the I/O threads; give them a moment, then stop.
  const absl::Time deadline = absl::Now() + absl::Seconds(2);
  while (shared_->connections.load() > 0 && absl::Now() < deadline) {
    absl::SleepFor(absl::Milliseconds(10));
  }
  shared_->ioc.stop();
  for (std::thread& t : shared_->threads) t.join();
  shared_->threads.clear();
  // The cancelled operations' handlers hold the server and its sessions:
  // run them out (they see `stopping` and end), or both would leak.
  shared_->ioc.restart();
  shared_->ioc.run_for(std::chrono::seconds(1));
}

}  // namespace labtrace::agent
