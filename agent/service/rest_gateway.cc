#include "agent/service/rest_gateway.h"

#include <memory>
#include <set>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "agent/store/uploader.h"
#include "common/names.h"
#include "google/protobuf/util/json_util.h"
#include "nlohmann/json.hpp"
#include "spdlog/spdlog.h"

namespace labtrace::agent {
namespace {

HttpResponse Json(int status, std::string body) {
  HttpResponse r;
  r.status = status;
  r.body = std::move(body);
  return r;
}

HttpResponse Error(const absl::Status& s) {
  const int http = HttpStatusFor(s.code());
  HttpResponse r = Json(http, JsonErrorBody(s.code(), http, s.message()));
  if (s.code() == absl::StatusCode::kUnavailable) {
    r.headers.push_back({"Retry-After", "1"});
  }
  return r;
}

HttpResponse Proto(const google::protobuf::Message& m) {
  std::string json;
  google::protobuf::util::JsonPrintOptions o;
  o.preserve_proto_field_names = true;
  o.add_whitespace = true;
  (void)google::protobuf::util::MessageToJsonString(m, &json, o);
  return Json(200, std::move(json));
}

// True if a JSON document repeats a key in one object: protobuf's parser
// would silently keep one of them.
bool HasDuplicateKeys(const std::string& body) {
  std::vector<std::set<std::string>> objects;
  bool duplicate = false;
  auto cb = [&](int depth, nlohmann::json::parse_event_t event,
                nlohmann::json& parsed) {
    (void)depth;
    switch (event) {
      case nlohmann::json::parse_event_t::object_start:
        objects.emplace_back();
        break;
      case nlohmann::json::parse_event_t::object_end:
        if (!objects.empty()) objects.pop_back();
        break;
      case nlohmann::json::parse_event_t::key:
        if (!objects.empty() &&
            !objects.back().insert(parsed.get<std::string>()).second) {
          duplicate = true;
        }
        break;
      default:
        break;
    }
    return true;
  };
  const nlohmann::json parsed =
      nlohmann::json::parse(body, cb, /*allow_exceptions=*/false);
  (void)parsed;
  return duplicate;
}

// The body as a message: protobuf's JSON mapping, unknown fields and
// duplicate keys refused. An empty body is an empty message.
absl::Status ParseBody(const HttpRequest& req, google::protobuf::Message* m) {
  if (absl::StripAsciiWhitespace(req.body).empty()) return absl::OkStatus();
  if (HasDuplicateKeys(req.body)) {
    return absl::InvalidArgumentError(
        "malformed request body: a JSON object repeats a key");
  }
  google::protobuf::util::JsonParseOptions o;
  o.ignore_unknown_fields = false;
  const auto s = google::protobuf::util::JsonStringToMessage(req.body, m, o);
  if (!s.ok()) {
    return absl::InvalidArgumentError(
        absl::StrCat("malformed request body: ", std::string(s.message())));
  }
  return absl::OkStatus();
}

bool QueryTrue(const HttpRequest& req, const char* key) {
  auto it = req.query.find(key);
  return it != req.query.end() && (it->second == "true" || it->second == "1");
}

std::string Query(const HttpRequest& req, const char* key) {
  auto it = req.query.find(key);
  return it == req.query.end() ? "" : it->second;
}

// One byte range of a file of `size` bytes, from a Range header.
struct ByteRange {
  std::uint64_t first = 0;
  std::uint64_t last = 0;  // Inclusive.
};
enum class RangeKind { kNone, kOne, kUnsatisfiable };

// RFC 9110 14.1/14.2, single ranges only: several ranges, other units and
// malformed values are ignored (the whole file is sent), which the RFC
// allows; a range starting past the end is unsatisfiable (416).
RangeKind ParseRange(const std::string& header, std::uint64_t size,
                     ByteRange* out) {
  absl::string_view v = absl::StripAsciiWhitespace(header);
  if (!absl::ConsumePrefix(&v, "bytes=") || absl::StrContains(v, ',')) {
    return RangeKind::kNone;
  }
  const std::size_t dash = v.find('-');
  if (dash == absl::string_view::npos) return RangeKind::kNone;
  const absl::string_view a = absl::StripAsciiWhitespace(v.substr(0, dash));
  const absl::string_view b = absl::StripAsciiWhitespace(v.substr(dash + 1));
  std::uint64_t first = 0, last = 0;
  if (a.empty()) {  // Suffix: the last N bytes.
    std::uint64_t n = 0;
    if (!absl::SimpleAtoi(b, &n)) return RangeKind::kNone;
    if (n == 0 || size == 0) return RangeKind::kUnsatisfiable;
    out->first = n >= size ? 0 : size - n;
    out->last = size - 1;
    return RangeKind::kOne;
  }
  if (!absl::SimpleAtoi(a, &first)) return RangeKind::kNone;
  if (b.empty()) {
    last = size == 0 ? 0 : size - 1;
  } else if (!absl::SimpleAtoi(b, &last) || last < first) {
    return RangeKind::kNone;
  }
  if (first >= size) return RangeKind::kUnsatisfiable;
  out->first = first;
  out->last = std::min(last, size - 1);
  return RangeKind::kOne;
}

struct Route {
  std::string method;
  std::string name;  // For metrics, audit and authorization.
  Role role;
  std::vector<std::string> args;  // Decoded path parameters.
};

// Matches a path to a route; NotFound / "405" (method) otherwise.
absl::StatusOr<Route> MatchRoute(const std::string& method,
                                 const std::string& path,
                                 std::string* allowed) {
  std::vector<std::string> parts = absl::StrSplit(path, '/', absl::SkipEmpty());
  for (std::string& p : parts) {
    std::string decoded;
    if (!PercentDecode(p, &decoded)) {
      return absl::InvalidArgumentError("malformed path: bad percent escape");
    }
    p = decoded;
  }
  struct Candidate {
    const char* method;
    const char* name;
    Role role;
  };
  std::vector<Candidate> candidates;
  std::vector<std::string> args;
  const std::size_t n = parts.size();
  auto is = [&](std::size_t i, const char* s) { return i < n && parts[i] == s; };
  if (n == 1 && is(0, "healthz")) {
    candidates = {{"GET", "Health", Role::kRead}};
  } else if (n == 1 && is(0, "metrics")) {
    candidates = {{"GET", "Metrics", Role::kRead}};
  } else if (n >= 2 && is(0, "v1")) {
    if (n == 2 && is(1, "info")) {
      candidates = {{"GET", "GetAgentInfo", Role::kRead}};
    } else if (n == 2 && is(1, "traces")) {
      candidates = {{"GET", "ListTraces", Role::kRead},
                    {"POST", "StartTrace", Role::kControl}};
    } else if (n == 3 && is(1, "traces")) {
      candidates = {{"GET", "GetTrace", Role::kRead}};
      args = {parts[2]};
    } else if (n == 4 && is(1, "traces") && is(3, "stop")) {
      candidates = {{"POST", "StopTrace", Role::kControl}};
      args = {parts[2]};
    } else if (n == 4 && is(1, "traces") && is(3, "cancel")) {
      candidates = {{"POST", "CancelTrace", Role::kControl}};
      args = {parts[2]};
    } else if (n == 2 && is(1, "keepalive")) {
      candidates = {{"POST", "KeepAlive", Role::kControl}};
    } else if (n == 2 && is(1, "stop-all")) {
      candidates = {{"POST", "StopAllTraces", Role::kAdmin}};
    } else if (n == 2 && is(1, "fence")) {
      candidates = {{"POST", "Fence", Role::kAdmin}};
    } else if (n == 2 && is(1, "unfence")) {
      candidates = {{"POST", "Unfence", Role::kAdmin}};
    } else if (n == 2 && is(1, "artifacts")) {
      candidates = {{"GET", "ListArtifacts", Role::kRead}};
    } else if (n == 3 && is(1, "artifacts")) {
      candidates = {{"GET", "GetArtifact", Role::kRead},
                    {"DELETE", "DeleteArtifact", Role::kAdmin}};
      args = {parts[2]};
    } else if (n == 4 && is(1, "artifacts") && is(3, "content")) {
      candidates = {{"GET", "FetchArtifact", Role::kRead}};
      args = {parts[2]};
    } else if (n == 4 && is(1, "artifacts") && is(3, "upload")) {
      candidates = {{"POST", "UploadArtifact", Role::kControl}};
      args = {parts[2]};
    } else if (n == 2 && is(1, "commands")) {
      candidates = {{"POST", "RunCommand", Role::kAdmin}};
    }
  }
  if (candidates.empty()) {
    return absl::NotFoundError(absl::StrCat(
        "no route ", method, " ", path, "; see README (REST API)"));
  }
  std::vector<std::string> methods;
  for (const Candidate& c : candidates) {
    // HEAD is GET without the body (the server leaves it out).
    if (method == c.method || (method == "HEAD" && std::string(c.method) == "GET")) {
      return Route{c.method, c.name, c.role, args};
    }
    methods.push_back(c.method);
    if (std::string(c.method) == "GET") methods.push_back("HEAD");
  }
  *allowed = absl::StrJoin(methods, ", ");
  return absl::UnimplementedError(absl::StrCat(
      "method ", method, " is not allowed on ", path, "; use ", *allowed));
}

}  // namespace

bool AcceptsZstd(absl::string_view accept_encoding) {
  for (absl::string_view item : absl::StrSplit(accept_encoding, ',')) {
    std::vector<absl::string_view> parts = absl::StrSplit(item, ';');
    if (absl::AsciiStrToLower(absl::StripAsciiWhitespace(parts[0])) != "zstd") {
      continue;
    }
    for (std::size_t i = 1; i < parts.size(); ++i) {
      absl::string_view p = absl::StripAsciiWhitespace(parts[i]);
      if (absl::ConsumePrefix(&p, "q=") || absl::ConsumePrefix(&p, "Q=")) {
        double q = 1;
        if (absl::SimpleAtod(p, &q) && q <= 0) return false;
      }
    }
    return true;
  }
  return false;
}

int HttpStatusFor(absl::StatusCode code) {
  switch (code) {
    case absl::StatusCode::kOk:
      return 200;
    case absl::StatusCode::kInvalidArgument:
    case absl::StatusCode::kFailedPrecondition:
      return 400;
    case absl::StatusCode::kOutOfRange:
      return 416;
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

std::string JsonErrorBody(absl::StatusCode code, int http_status,
                          absl::string_view message) {
  nlohmann::json j = {{"code", absl::StatusCodeToString(code)},
                      {"message", std::string(message)},
                      {"http_status", http_status}};
  // Invalid UTF-8 in a message (a client's bytes echoed back) is replaced.
  return j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) +
         "\n";
}

absl::StatusOr<std::unique_ptr<RestGateway>> RestGateway::Start(
    const std::string& listen, const TlsConfig& tls, HttpLimits limits,
    RestGatewayDeps deps) {
  std::unique_ptr<RestGateway> g(new RestGateway());
  g->deps_ = std::move(deps);
  RestGateway* self = g.get();
  Metrics* metrics = g->deps_.metrics;
  absl::StatusOr<std::unique_ptr<HttpServer>> server = HttpServer::Start(
      listen, tls, limits,
      [self](HttpRequest req, HttpRespond respond) {
        self->Handle(std::move(req), std::move(respond));
      },
      [metrics](int status, const std::string& message) {
        // The server's own errors: the canonical code closest to each
        // (400, 413, 431: the request is bad or too large).
        absl::StatusCode code = absl::StatusCode::kInvalidArgument;
        if (status == 503) code = absl::StatusCode::kUnavailable;
        if (status == 408) code = absl::StatusCode::kDeadlineExceeded;
        if (status >= 500 && status != 503) code = absl::StatusCode::kInternal;
        metrics->Request("rest", "protocol", absl::StatusCodeToString(code));
        HttpResponse r = Json(status, JsonErrorBody(code, status, message));
        r.headers.push_back({"Connection", "close"});
        if (status == 503) r.headers.push_back({"Retry-After", "1"});
        return r;
      });
  if (!server.ok()) return server.status();
  g->server_ = std::move(*server);
  return g;
}

RestGateway::~RestGateway() { Stop(); }

void RestGateway::Stop() {
  if (server_ != nullptr) server_->Stop();
}

void RestGateway::Handle(HttpRequest req, HttpRespond respond) {
  std::string allowed;
  absl::StatusOr<Route> route = MatchRoute(req.method, req.path, &allowed);
  if (!route.ok()) {
    HttpResponse r = Error(route.status());
    if (route.status().code() == absl::StatusCode::kUnimplemented) {
      r.status = 405;
      r.body = JsonErrorBody(route.status().code(), 405,
                             route.status().message());
      r.headers.push_back({"Allow", allowed});
    }
    deps_.metrics->Request(
        "rest", "unknown",
        absl::StatusCodeToString(route.status().code()));
    return respond(std::move(r));
  }
  const std::string name = route->name;
  if (name == "Health") {
    HttpResponse r;
    r.content_type = "text/plain";
    r.body = "ok\n";
    return respond(std::move(r));
  }
  // Every other route: authorization, metrics, errors as JSON.
  const std::string authz = req.Header("authorization");
  absl::StatusOr<Caller> caller = deps_.authorizer->Authorize(
      authz, req.cert_identity, name, route->role);
  Metrics* metrics = deps_.metrics;
  auto done = [metrics, name, respond](absl::StatusOr<HttpResponse> r) {
    metrics->Request("rest", name,
                     absl::StatusCodeToString(r.status().code()));
    respond(r.ok() ? std::move(*r) : Error(r.status()));
  };
  if (!caller.ok()) {
    Caller refused;
    refused.identity = RefusedIdentity(authz, req.cert_identity);
    deps_.audit->Record(refused, req.peer, name, "", caller.status());
    return done(caller.status());
  }
  const std::string arg = route->args.empty() ? "" : route->args[0];
  AuditLog* audit = deps_.audit;
  SessionManager* manager = deps_.manager;
  ArtifactStore* store = deps_.store;
  CommandRunner* runner = deps_.runner;
  const Caller c = *caller;
  const std::string peer = req.peer;

  // Runs `work` on `pool`, or answers "agent busy" at once.
  auto on_pool = [&done, name](WorkPool& pool,
                               std::function<absl::StatusOr<HttpResponse>()> work) {
    auto shared =
        std::make_shared<std::function<absl::StatusOr<HttpResponse>()>>(
            std::move(work));
    if (!pool.Submit([done, shared] { done((*shared)()); })) {
      done(BusyStatus(pool, name));
    }
  };

  if (name == "Metrics") {
    HttpResponse r;
    r.content_type = "text/plain; version=0.0.4";
    r.body = metrics->Render(manager->active_count(), store->count(),
                             store->total_bytes());
    return done(r);
  }
  if (name == "GetAgentInfo") return done(Proto(deps_.info()));
  if (name == "ListTraces") {
    v1::ListTracesResponse out;
    for (v1::TraceSession& t : manager->List(QueryTrue(req, "include_finished"))) {
      *out.add_sessions() = std::move(t);
    }
    return done(Proto(out));
  }
  if (name == "GetTrace") {
    absl::StatusOr<v1::TraceSession> r = manager->Get(arg);
    return done(r.ok() ? absl::StatusOr<HttpResponse>(Proto(*r)) : r.status());
  }
  if (name == "ListArtifacts") {
    v1::ListArtifactsRequest in;
    in.set_run_id(Query(req, "run_id"));
    in.set_name(Query(req, "name"));
    in.set_page_token(Query(req, "page_token"));
    if (std::string ps = Query(req, "page_size"); !ps.empty()) {
      int n = 0;
      if (!absl::SimpleAtoi(ps, &n)) {
        return done(absl::InvalidArgumentError("page_size is not a number"));
      }
      in.set_page_size(n);
    }
    v1::ListArtifactsResponse out;
    absl::Status s = ListArtifactsPage(*store, in, &out);
    return done(s.ok() ? absl::StatusOr<HttpResponse>(Proto(out)) : s);
  }
  if (name == "GetArtifact") {
    absl::StatusOr<v1::Artifact> a = store->Get(arg);
    return done(a.ok() ? absl::StatusOr<HttpResponse>(Proto(*a)) : a.status());
  }
  if (name == "KeepAlive") {
    // Cheap and vital (a missed renewal stops traces): never queued.
    v1::KeepAliveRequest in;
    if (absl::Status p = ParseBody(req, &in); !p.ok()) return done(p);
    absl::StatusOr<v1::KeepAliveResponse> r = manager->KeepAlive(in);
    return done(r.ok() ? absl::StatusOr<HttpResponse>(Proto(*r)) : r.status());
  }
  if (name == "StartTrace") {
    auto in = std::make_shared<v1::StartTraceRequest>();
    if (absl::Status p = ParseBody(req, in.get()); !p.ok()) return done(p);
    return on_pool(deps_.pools->control, [=]() -> absl::StatusOr<HttpResponse> {
      const std::string target =
          absl::StrCat(in->name(), " profile=", in->profile());
      if (absl::Status a = audit->Begin(c, peer, "StartTrace", target); !a.ok())
        return a;
      absl::StatusOr<v1::TraceSession> r = manager->Start(*in);
      audit->Record(c, peer, "StartTrace", target, r.status());
      if (!r.ok()) return r.status();
      return Proto(*r);
    });
  }
  if (name == "StopTrace" || name == "CancelTrace") {
    return on_pool(deps_.pools->control, [=]() -> absl::StatusOr<HttpResponse> {
      if (name == "StopTrace") {
        absl::StatusOr<v1::StopTraceResponse> r = manager->Stop(arg);
        audit->Record(c, peer, name, arg, r.status());
        if (!r.ok()) return r.status();
        return Proto(*r);
      }
      absl::StatusOr<v1::TraceSession> r = manager->Cancel(arg);
      audit->Record(c, peer, name, arg, r.status());
      if (!r.ok()) return r.status();
      return Proto(*r);
    });
  }
  if (name == "StopAllTraces") {
    const bool discard = QueryTrue(req, "discard");
    return on_pool(deps_.pools->emergency,
                   [=]() -> absl::StatusOr<HttpResponse> {
                     v1::StopAllTracesResponse out;
                     for (v1::StoppedCommand& k :
                          runner->KillAll("an emergency stop-all")) {
                       *out.add_commands() = std::move(k);
                     }
                     v1::StopAllTracesResponse r = manager->StopAll(discard);
                     for (v1::StopAllResult& x : *r.mutable_results()) {
                       *out.add_results() = std::move(x);
                     }
                     audit->Record(c, peer, "StopAllTraces",
                                   discard ? "all (discard)" : "all",
                                   absl::OkStatus());
                     return Proto(out);
                   });
  }
  if (name == "Fence") {
    auto in = std::make_shared<v1::FenceRequest>();
    if (absl::Status p = ParseBody(req, in.get()); !p.ok()) return done(p);
    return on_pool(deps_.pools->emergency,
                   [=]() -> absl::StatusOr<HttpResponse> {
                     std::vector<v1::StoppedCommand> killed = runner->KillAll(
                         "an emergency stop-all with a fence");
                     absl::StatusOr<v1::FenceResponse> r =
                         manager->Fence(c.identity, in->reason());
                     audit->Record(c, peer, "Fence", QuoteForMessage(in->reason()),
                                   r.status());
                     if (!r.ok()) return r.status();
                     for (v1::StoppedCommand& k : killed) {
                       *r->mutable_stopped()->add_commands() = std::move(k);
                     }
                     return Proto(*r);
                   });
  }
  if (name == "Unfence") {
    return on_pool(deps_.pools->emergency,
                   [=]() -> absl::StatusOr<HttpResponse> {
                     if (absl::Status a = audit->Begin(c, peer, "Unfence", "");
                         !a.ok()) {
                       return a;
                     }
                     absl::StatusOr<v1::FenceState> r = manager->Unfence(c.identity);
                     audit->Record(c, peer, "Unfence", "", r.status());
                     if (!r.ok()) return r.status();
                     return Proto(*r);
                   });
  }
  if (name == "DeleteArtifact") {
    return on_pool(deps_.pools->control, [=]() -> absl::StatusOr<HttpResponse> {
      if (absl::Status a = audit->Begin(c, peer, "DeleteArtifact", arg); !a.ok())
        return a;
      absl::StatusOr<std::uint64_t> freed = store->Delete(arg);
      audit->Record(c, peer, "DeleteArtifact", arg, freed.status());
      if (!freed.ok()) return freed.status();
      v1::DeleteArtifactResponse out;
      out.set_freed_bytes(*freed);
      return Proto(out);
    });
  }
  if (name == "RunCommand") {
    auto in = std::make_shared<v1::RunCommandRequest>();
    if (absl::Status p = ParseBody(req, in.get()); !p.ok()) return done(p);
    auto gone = req.client_gone;
    return on_pool(deps_.pools->commands, [=]() -> absl::StatusOr<HttpResponse> {
      const std::string target =
          absl::StrCat(in->trace().name(), " argv=",
                       QuoteForMessage(absl::StrJoin(in->argv(), " ")));
      if (absl::Status a = audit->Begin(c, peer, "RunCommand", target); !a.ok())
        return a;
      // A client that hangs up ends the program (its trace is still kept).
      absl::StatusOr<v1::RunCommandResponse> r = runner->Run(*in, gone);
      audit->Record(c, peer, "RunCommand", target, r.status());
      if (!r.ok()) return r.status();
      return Proto(*r);
    });
  }
  if (name == "UploadArtifact") {
    auto in = std::make_shared<v1::UploadArtifactRequest>();
    if (absl::Status p = ParseBody(req, in.get()); !p.ok()) return done(p);
    in->set_artifact_id(arg);
    auto gone = req.client_gone;
    return on_pool(deps_.pools->commands, [=]() -> absl::StatusOr<HttpResponse> {
      std::string where;
      if (in->parts_size() > 0) {
        where = in->parts(0).url().substr(0, in->parts(0).url().find('?'));
      }
      const std::string target = absl::StrCat(arg, " -> ", where);
      if (absl::Status a = audit->Begin(c, peer, "UploadArtifact", target);
          !a.ok())
        return a;
      // A client that hangs up ends the upload.
      absl::StatusOr<v1::UploadArtifactResponse> r = agent::UploadArtifact(
          *store, *in, gone, absl::Now() + absl::Hours(6));
      audit->Record(c, peer, "UploadArtifact", target, r.status());
      if (!r.ok()) return r.status();
      return Proto(*r);
    });
  }
  if (name == "FetchArtifact") {
    absl::StatusOr<v1::Artifact> a = store->Get(arg);
    absl::StatusOr<std::filesystem::path> path =
        a.ok() ? store->PathOf(arg)
               : absl::StatusOr<std::filesystem::path>(a.status());
    if (!path.ok()) return done(path.status());
    const std::string etag = absl::StrCat("\"", a->sha256(), "\"");
    if (req.Header("if-none-match") == etag) {
      HttpResponse r;
      r.status = 304;
      r.content_type = "application/octet-stream";
      r.headers.push_back({"ETag", etag});
      return done(r);
    }
    const std::uint64_t size = a->size_bytes();
    ByteRange range{0, size == 0 ? 0 : size - 1};
    RangeKind kind = RangeKind::kNone;
    const std::string if_range = req.Header("if-range");
    if (!req.Header("range").empty() && (if_range.empty() || if_range == etag)) {
      kind = ParseRange(req.Header("range"), size, &range);
    }
    if (kind == RangeKind::kUnsatisfiable) {
      HttpResponse r = Json(
          416, JsonErrorBody(absl::StatusCode::kOutOfRange, 416,
                             absl::StrCat("range ", req.Header("range"),
                                          " is outside ", a->id(), " (", size,
                                          " bytes)")));
      r.headers.push_back({"Content-Range", absl::StrCat("bytes */", size)});
      return done(r);
    }
    HttpResponse r;
    r.status = kind == RangeKind::kOne ? 206 : 200;
    r.content_type = "application/octet-stream";
    r.headers.push_back({"ETag", etag});
    r.headers.push_back({"Accept-Ranges", "bytes"});
    r.headers.push_back(
        {"Content-Disposition",
         absl::StrCat("attachment; filename=\"", a->file_name(), "\"")});
    if (kind == RangeKind::kOne) {
      r.headers.push_back({"Content-Range",
                           absl::StrCat("bytes ", range.first, "-", range.last,
                                        "/", size)});
    }
    HttpFile f;
    f.path = *path;
    f.offset = kind == RangeKind::kOne ? range.first : 0;
    f.length = size == 0 ? 0 : (kind == RangeKind::kOne ? range.last - range.first + 1 : size);
    // The whole file to a client that takes zstd: one zstd stream (curl
    // --compressed decodes it). Ranges are always sent as they are.
    if (kind == RangeKind::kNone && req.method != "HEAD" &&
        AcceptsZstd(req.Header("accept-encoding"))) {
      f.zstd_level = deps_.zstd_level;
      r.headers.push_back({"Content-Encoding", "zstd"});
      // Another representation of the same bytes: a weak validator.
      for (auto& [k, v] : r.headers) {
        if (k == "ETag") v = "W/" + etag;
      }
    }
    r.headers.push_back({"Vary", "Accept-Encoding"});
    if (req.method == "HEAD") {  // Headers only: no download, no slot.
      r.file = std::move(f);
      return done(r);
    }
    std::atomic<int>& slots = deps_.pools->active_downloads;
    if (++slots > deps_.pools->max_downloads) {
      --slots;
      HttpResponse r = Error(absl::UnavailableError(absl::StrCat(
          kBusyPrefix, "FetchArtifact: ", deps_.pools->max_downloads,
          " downloads are in progress, the limit (max_downloads); retry in a "
          "moment")));
      metrics->Request("rest", name, "UNAVAILABLE");
      return respond(std::move(r));
    }
    f.on_bytes = [metrics](std::uint64_t n) { metrics->BytesServed(n); };
    const std::string id = a->id();
    const std::uint64_t offset = f.offset;
    AgentPools* pools = deps_.pools;
    f.on_done = [pools, audit, c, peer, id, offset](bool whole,
                                                    std::uint64_t sent) {
      --pools->active_downloads;
      audit->Record(c, peer, "FetchArtifact",
                    absl::StrCat(id, " offset=", offset, " bytes=", sent),
                    whole ? absl::OkStatus()
                          : absl::CancelledError("the download was cut off"));
    };
    r.file = std::move(f);
    return done(r);
  }
  done(absl::InternalError(absl::StrCat("route ", name, " has no handler")));
}

}  // namespace labtrace::agent#include "agent/store/uploader.h"

