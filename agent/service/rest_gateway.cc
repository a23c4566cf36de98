#include "agent/service/rest_gateway.h"

#include <openssl/ssl.h>
#include <openssl/x509.h>

#include <fstream>
#include <memory>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "common/names.h"
#include "google/protobuf/util/json_util.h"
#include "httplib.h"
#include "spdlog/spdlog.h"

namespace labtrace::agent {
namespace {

// Larger JSON bodies get 413. httplib itself stops reading at 8x that.
constexpr std::size_t kMaxBody = 1 << 20;

std::string CertIdentity(const httplib::Request& req) {
  if (req.ssl == nullptr) return "";
  X509* cert = SSL_get_peer_certificate(req.ssl);
  if (cert == nullptr) return "";
  char cn[256] = {};
  X509_NAME_get_text_by_NID(X509_get_subject_name(cert), NID_commonName, cn,
                            sizeof(cn) - 1);
  X509_free(cert);
  return cn;
}

void SendJson(httplib::Response& res, int status, const std::string& body) {
  res.status = status;
  res.set_content(body, "application/json");
}

void SendError(httplib::Response& res, const absl::Status& s) {
  const int http = HttpStatusFor(s.code());
  // Hand-built to stay valid JSON whatever the message holds.
  std::string msg;
  for (char c : s.message()) {
    if (c == '"' || c == '\\') {
      msg += '\\';
      msg += c;
    } else if (static_cast<unsigned char>(c) < 0x20) {
      msg += ' ';
    } else {
      msg += c;
    }
  }
  SendJson(res, http,
           absl::StrCat("{\"code\": \"", absl::StatusCodeToString(s.code()),
                        "\", \"message\": \"", msg,
                        "\", \"http_status\": ", http, "}\n"));
}

void SendProto(httplib::Response& res, const google::protobuf::Message& m) {
  std::string json;
  google::protobuf::util::JsonPrintOptions o;
  o.preserve_proto_field_names = true;
  o.add_whitespace = true;
  (void)google::protobuf::util::MessageToJsonString(m, &json, o);
  SendJson(res, 200, json);
}

// The body as a message: protobuf's JSON mapping, unknown fields refused.
absl::Status ParseBody(const httplib::Request& req,
                       google::protobuf::Message* m) {
  if (req.body.empty()) return absl::OkStatus();
  google::protobuf::util::JsonParseOptions o;
  o.ignore_unknown_fields = false;
  const auto s = google::protobuf::util::JsonStringToMessage(req.body, m, o);
  if (!s.ok()) {
    return absl::InvalidArgumentError(
        absl::StrCat("malformed request body: ", std::string(s.message())));
  }
  return absl::OkStatus();
}

bool QueryTrue(const httplib::Request& req, const char* key) {
  return req.has_param(key) && (req.get_param_value(key) == "true" ||
                                req.get_param_value(key) == "1");
}

}  // namespace

int HttpStatusFor(absl::StatusCode code) {
  switch (code) {
    case absl::StatusCode::kOk:
      return 200;
    case absl::StatusCode::kInvalidArgument:
    case absl::StatusCode::kFailedPrecondition:
    case absl::StatusCode::kOutOfRange:
      return 400;
    case absl::StatusCode::kUnauthenticated:
      return 401;
    case absl::StatusCode::kPermissionDenied:
      return 403;
    case absl::StatusCode::kNotFound:
      return 404;
    case absl::StatusCode::kAlreadyExists:
    case absl::StatusCode::kAborted:
      return 409;
    case absl::StatusCode::kResourceExhausted:
      return 429;
    case absl::StatusCode::kCancelled:
      return 499;
    case absl::StatusCode::kUnimplemented:
      return 501;
    case absl::StatusCode::kUnavailable:
      return 503;
    case absl::StatusCode::kDeadlineExceeded:
      return 504;
    default:
      return 500;
  }
}

absl::StatusOr<std::unique_ptr<RestGateway>> RestGateway::Start(
    const std::string& listen, const TlsConfig& tls, RestGatewayDeps deps) {
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
  std::unique_ptr<RestGateway> g(new RestGateway());
  g->deps_ = std::move(deps);
  if (tls.enabled()) {
    auto ssl = std::make_unique<httplib::SSLServer>(
        tls.cert_file.c_str(), tls.key_file.c_str(),
        tls.client_ca_file.empty() ? nullptr : tls.client_ca_file.c_str());
    if (!ssl->is_valid()) {
      return absl::InvalidArgumentError(
          absl::StrCat("cannot set up TLS for the REST listener from ",
                       tls.cert_file, " / ", tls.key_file));
    }
    g->server_ = std::move(ssl);
  } else {
    g->server_ = std::make_unique<httplib::Server>();
  }
  g->server_->set_payload_max_length(8 * kMaxBody);
  g->server_->set_read_timeout(std::chrono::seconds(30));
  g->server_->new_task_queue = [] { return new httplib::ThreadPool(8); };
  g->Routes();
  const int bound = port == 0
                        ? g->server_->bind_to_any_port(host)
                        : (g->server_->bind_to_port(host, port) ? port : -1);
  if (bound <= 0) {
    return absl::UnavailableError(
        absl::StrCat("cannot listen (REST) on ", listen, " (address in use?)"));
  }
  g->port_ = bound;
  httplib::Server* server = g->server_.get();
  g->thread_ = std::thread([server] { server->listen_after_bind(); });
  return g;
}

RestGateway::~RestGateway() { Stop(); }

void RestGateway::Stop() {
  if (server_ != nullptr) server_->stop();
  if (thread_.joinable()) thread_.join();
}

void RestGateway::Routes() {
  httplib::Server& s = *server_;
  // Every route: authorization, metrics, errors as JSON.
  using Body = std::function<absl::Status(const httplib::Request&,
                                          httplib::Response&, const Caller&)>;
  auto route = [this](const char* name, Role role, Body body) {
    return [this, name, role, body](const httplib::Request& req,
                                    httplib::Response& res) {
      if (req.body.size() > kMaxBody) {
        SendJson(res, 413,
                 absl::StrCat("{\"code\": \"INVALID_ARGUMENT\", \"message\": "
                              "\"request body of ",
                              req.body.size(), " bytes; at most ", kMaxBody,
                              " are accepted\", \"http_status\": 413}\n"));
        deps_.metrics->Request("rest", name, "INVALID_ARGUMENT");
        return;
      }
      auto it = req.headers.find("Authorization");
      const std::string authz = it == req.headers.end() ? "" : it->second;
      absl::StatusOr<Caller> caller =
          deps_.authorizer->Authorize(authz, CertIdentity(req), name, role);
      absl::Status st = caller.ok() ? body(req, res, *caller) : caller.status();
      if (!st.ok()) SendError(res, st);
      deps_.metrics->Request("rest", name, absl::StatusCodeToString(st.code()));
    };
  };
  auto audited = [this](const Caller& c, const httplib::Request& req,
                        const char* op, const std::string& target,
                        const absl::Status& st) {
    deps_.audit->Record(
        c, absl::StrCat("rest:", req.remote_addr, ":", req.remote_port), op,
        target, st);
  };

  s.Get("/healthz", [](const httplib::Request&, httplib::Response& res) {
    res.set_content("ok\n", "text/plain");
  });
  s.Get("/metrics", route("Metrics", Role::kRead,
                          [this](const auto&, auto& res, const auto&) {
                            res.set_content(deps_.metrics->Render(
                                                deps_.manager->active_count(),
                                                deps_.store->count(),
                                                deps_.store->total_bytes()),
                                            "text/plain; version=0.0.4");
                            return absl::OkStatus();
                          }));
  s.Get("/v1/info", route("GetAgentInfo", Role::kRead,
                          [this](const auto&, auto& res, const auto&) {
                            SendProto(res, deps_.info());
                            return absl::OkStatus();
                          }));
  s.Get("/v1/traces", route("ListTraces", Role::kRead,
                            [this](const auto& req, auto& res, const auto&) {
                              v1::ListTracesResponse out;
                              for (v1::TraceSession& t : deps_.manager->List(
                                       QueryTrue(req, "include_finished"))) {
                                *out.add_sessions() = std::move(t);
                              }
                              SendProto(res, out);
                              return absl::OkStatus();
                            }));
  s.Post("/v1/traces",
         route("StartTrace", Role::kControl,
               [this, audited](const auto& req, auto& res, const Caller& c) {
                 v1::StartTraceRequest in;
                 if (absl::Status p = ParseBody(req, &in); !p.ok()) return p;
                 absl::StatusOr<v1::TraceSession> r = deps_.manager->Start(in);
                 audited(c, req, "StartTrace",
                         absl::StrCat(in.name(), " profile=", in.profile()),
                         r.status());
                 if (!r.ok()) return r.status();
                 SendProto(res, *r);
                 return absl::OkStatus();
               }));
  s.Get(R"(/v1/traces/([^/]+))",
        route("GetTrace", Role::kRead,
              [this](const auto& req, auto& res, const auto&) {
                absl::StatusOr<v1::TraceSession> r =
                    deps_.manager->Get(req.matches[1]);
                if (!r.ok()) return r.status();
                SendProto(res, *r);
                return absl::OkStatus();
              }));
  s.Post(R"(/v1/traces/([^/]+)/stop)",
         route("StopTrace", Role::kControl,
               [this, audited](const auto& req, auto& res, const Caller& c) {
                 absl::StatusOr<v1::StopTraceResponse> r =
                     deps_.manager->Stop(req.matches[1]);
                 audited(c, req, "StopTrace", req.matches[1], r.status());
                 if (!r.ok()) return r.status();
                 SendProto(res, *r);
                 return absl::OkStatus();
               }));
  s.Post(R"(/v1/traces/([^/]+)/cancel)",
         route("CancelTrace", Role::kControl,
               [this, audited](const auto& req, auto& res, const Caller& c) {
                 absl::StatusOr<v1::TraceSession> r =
                     deps_.manager->Cancel(req.matches[1]);
                 audited(c, req, "CancelTrace", req.matches[1], r.status());
                 if (!r.ok()) return r.status();
                 SendProto(res, *r);
                 return absl::OkStatus();
               }));
  s.Post("/v1/stop-all",
         route("StopAllTraces", Role::kAdmin,
               [this, audited](const auto& req, auto& res, const Caller& c) {
                 const bool discard = QueryTrue(req, "discard");
                 v1::StopAllTracesResponse r = deps_.manager->StopAll(discard);
                 audited(c, req, "StopAllTraces",
                         discard ? "all (discard)" : "all", absl::OkStatus());
                 SendProto(res, r);
                 return absl::OkStatus();
               }));
  s.Get(
      "/v1/artifacts",
      route("ListArtifacts", Role::kRead,
            [this](const auto& req, auto& res, const auto&) {
              const std::string run = req.get_param_value("run_id");
              const std::string name = req.get_param_value("name");
              if (absl::Status v = ValidateOptionalName("run_id", run); !v.ok())
                return v;
              if (absl::Status v = ValidateOptionalName("name", name); !v.ok())
                return v;
              v1::ListArtifactsResponse out;
              for (v1::Artifact& a : deps_.store->List(run, name))
                *out.add_artifacts() = std::move(a);
              SendProto(res, out);
              return absl::OkStatus();
            }));
  s.Get(R"(/v1/artifacts/([^/]+))",
        route("GetArtifact", Role::kRead,
              [this](const auto& req, auto& res, const auto&) {
                absl::StatusOr<v1::Artifact> a =
                    deps_.store->Get(req.matches[1]);
                if (!a.ok()) return a.status();
                SendProto(res, *a);
                return absl::OkStatus();
              }));
  s.Delete(R"(/v1/artifacts/([^/]+))",
           route("DeleteArtifact", Role::kAdmin,
                 [this, audited](const auto& req, auto& res, const Caller& c) {
                   absl::StatusOr<std::uint64_t> freed =
                       deps_.store->Delete(req.matches[1]);
                   audited(c, req, "DeleteArtifact", req.matches[1],
                           freed.status());
                   if (!freed.ok()) return freed.status();
                   v1::DeleteArtifactResponse out;
                   out.set_freed_bytes(*freed);
                   SendProto(res, out);
                   return absl::OkStatus();
                 }));
  s.Get(
      R"(/v1/artifacts/([^/]+)/content)",
      route(
          "FetchArtifact", Role::kRead,
          [this](const auto& req, auto& res, const auto&) {
            absl::StatusOr<v1::Artifact> a = deps_.store->Get(req.matches[1]);
            if (!a.ok()) return a.status();
            absl::StatusOr<std::filesystem::path> path =
                deps_.store->PathOf(a->id());
            if (!path.ok()) return path.status();
            auto in = std::make_shared<std::ifstream>(*path, std::ios::binary);
            if (!*in)
              return absl::InternalError(
                  absl::StrCat("cannot open ", a->file_name()));
            res.set_header("ETag", absl::StrCat("\"", a->sha256(), "\""));
            // A range that starts past the end: 416 with the size (RFC 9110;
            // curl -C - on a complete file relies on it).
            for (const auto& [first, last] : req.ranges) {
              if (first >= 0 &&
                  static_cast<std::uint64_t>(first) >= a->size_bytes()) {
                res.set_header("Content-Range",
                               absl::StrCat("bytes */", a->size_bytes()));
                SendJson(
                    res, 416,
                    absl::StrCat("{\"code\": \"OUT_OF_RANGE\", \"message\": "
                                 "\"range starts at ",
                                 first, ", past the end of ", a->id(), " (",
                                 a->size_bytes(),
                                 " bytes)\", \"http_status\": 416}\n"));
                return absl::OkStatus();
              }
            }
            res.set_header(
                "Content-Disposition",
                absl::StrCat("attachment; filename=\"", a->file_name(), "\""));
            Metrics* metrics = deps_.metrics;
            // httplib answers Range requests (206, 416) from this provider.
            res.set_content_provider(
                a->size_bytes(), "application/octet-stream",
                [in, metrics](std::size_t offset, std::size_t length,
                              httplib::DataSink& sink) {
                  std::vector<char> buf(std::min<std::size_t>(length, 1 << 20));
                  in->clear();
                  in->seekg(static_cast<std::streamoff>(offset));
                  in->read(buf.data(),
                           static_cast<std::streamsize>(buf.size()));
                  const std::streamsize n = in->gcount();
                  if (n <= 0) return false;
                  metrics->BytesServed(static_cast<std::uint64_t>(n));
                  return sink.write(buf.data(), static_cast<std::size_t>(n));
                });
            return absl::OkStatus();
          }));
  s.Post("/v1/commands",
         route("RunCommand", Role::kAdmin,
               [this, audited](const auto& req, auto& res, const Caller& c) {
                 v1::RunCommandRequest in;
                 if (absl::Status p = ParseBody(req, &in); !p.ok()) return p;
                 absl::StatusOr<v1::RunCommandResponse> r =
                     // httplib 0.11 cannot tell when the client went away: the
                     // program runs to its end or its timeout.
                     deps_.runner->Run(in, [] { return false; });
                 audited(c, req, "RunCommand",
                         absl::StrCat(in.trace().name(), " ",
                                      in.argv_size() > 0 ? in.argv(0) : ""),
                         r.status());
                 if (!r.ok()) return r.status();
                 SendProto(res, *r);
                 return absl::OkStatus();
               }));
  s.set_error_handler([](const httplib::Request& req, httplib::Response& res) {
    if (!res.body.empty()) return;  // A route already wrote its JSON error.
    if (res.status == 404) {
      SendError(res, absl::NotFoundError(
                         absl::StrCat("no route ", req.method, " ", req.path,
                                      "; see README (REST API)")));
    } else if (res.status == 413) {
      res.set_content(
          absl::StrCat(
              "{\"code\": \"INVALID_ARGUMENT\", \"message\": \"request "
              "body larger than ",
              kMaxBody, " bytes\", \"http_status\": 413}\n"),
          "application/json");
    }
  });
}

}  // namespace labtrace::agent
