// The REST/JSON mirror of a real agent, driven by curl (a real HTTP client):
// tokens and roles, start/stop, a resumed download checked with sha256,
// Range and ETag, and bad input answered precisely while a session runs on.

#include "common/file_util.h"
#include "common/subprocess.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "tests/testing/test_util.h"

namespace labtrace {
namespace {

using nlohmann::json;
using ::testing::HasSubstr;
using ::testing::Not;

constexpr char kRead[] = "rest-read-token";
constexpr char kControl[] = "rest-control-token";
constexpr char kAdmin[] = "rest-admin-token";

struct Http {
  int status = 0;
  std::string body;
  std::string headers;
  json Json() const { return json::parse(body, nullptr, false); }
};

class RestTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (subprocess::FindProgram("curl").empty())
      GTEST_SKIP() << "curl is not installed";
    etl_ = testing::TestdataEtl("airbus_ShutdownPerfDiagLogger.etl");
    if (etl_.empty())
      GTEST_SKIP() << "../shared/testdata/etl is not beside this checkout";
    std::filesystem::create_directories(dir_.path() / "wpr");
    const std::string cfg =
        "wpr: {path: " + testing::FakeWprBinary() + "}\n" +
        "profiles: [{name: general, backend: wpr, args: [GeneralProfile]}]\n" +
        "tokens:\n"
        "  - {name: viewer, role: read, sha256: " +
        Sha256Hex(kRead) + "}\n" +
        "  - {name: ci, role: control, sha256: " + Sha256Hex(kControl) + "}\n" +
        "  - {name: admin, role: admin, sha256: " + Sha256Hex(kAdmin) + "}\n";
    agent_ =
        std::make_unique<testing::AgentProcess>(testing::AgentProcess::Options{
            dir_.path() / "data",
            cfg,
            {},
            {"FAKE_WPR_STATE_DIR=" + (dir_.path() / "wpr").string(),
             "FAKE_WPR_ETL_SOURCE=" + etl_.string()}});
    std::string error;
    ASSERT_TRUE(agent_->Start(&error)) << error;
    ASSERT_GT(agent_->rest_port(), 0);
  }

  std::string Url(const std::string& path) const {
    return "http://127.0.0.1:" + std::to_string(agent_->rest_port()) + path;
  }

  // curl METHOD URL [body] with a token; extra curl args appended.
  Http Curl(const std::string& method, const std::string& path,
            const std::string& token, const std::string& body = "",
            std::vector<std::string> extra = {}) {
    static int n = 0;
    const auto out = dir_.path() / ("body" + std::to_string(++n));
    const auto hdr = dir_.path() / ("hdr" + std::to_string(n));
    subprocess::Options o;
    // The body goes to `out` unless the caller names its own -o file.
    const bool own_output =
        std::find(extra.begin(), extra.end(), "-o") != extra.end();
    o.argv = {"curl",       "-sS", "-X",           method,       "-D",
              hdr.string(), "-w",  "%{http_code}", "--max-time", "60"};
    if (!own_output) o.argv.insert(o.argv.end(), {"-o", out.string()});
    if (!token.empty()) {
      o.argv.push_back("-H");
      o.argv.push_back("Authorization: Bearer " + token);
    }
    if (!body.empty()) {
      const auto b = dir_.path() / ("req" + std::to_string(n));
      testing::WriteTextFile(b, body);
      o.argv.insert(o.argv.end(), {"-H", "Content-Type: application/json",
                                   "--data-binary", "@" + b.string()});
    }
    if (body.empty() && method == "POST") {
      // curl -X POST alone sends no Content-Length; say "empty body".
      o.argv.insert(o.argv.end(), {"--data-binary", ""});
    }
    o.argv.insert(o.argv.end(), extra.begin(), extra.end());
    o.argv.push_back(Url(path));
    o.timeout = std::chrono::seconds(90);
    subprocess::Result r = subprocess::Run(o);
    Http h;
    h.status = std::atoi(r.output.c_str());
    h.body = testing::ReadTextFile(out);
    h.headers = testing::ReadTextFile(hdr);
    return h;
  }

  testing::TempDir dir_;
  std::filesystem::path etl_;
  std::unique_ptr<testing::AgentProcess> agent_;
};

TEST_F(RestTest, TokensRolesStartStopAndResumedDownload) {
  EXPECT_EQ(Curl("GET", "/healthz", "").status, 200);
  Http h = Curl("GET", "/v1/info", "");
  EXPECT_EQ(h.status, 401);
  EXPECT_EQ(h.Json()["code"], "UNAUTHENTICATED");
  EXPECT_EQ(Curl("GET", "/v1/info", "nope").status, 401);
  h = Curl("GET", "/v1/info", kRead);
  ASSERT_EQ(h.status, 200) << h.body;
  EXPECT_EQ(h.Json()["version"], LABTRACE_VERSION);

  const std::string start =
      R"({"name": "rest_op", "profile": "general", "run_id": "r1"})";
  h = Curl("POST", "/v1/traces", kRead, start);
  EXPECT_EQ(h.status, 403);
  EXPECT_EQ(h.Json()["code"], "PERMISSION_DENIED");
  h = Curl("POST", "/v1/traces", kControl, start);
  ASSERT_EQ(h.status, 200) << h.body;
  EXPECT_EQ(h.Json()["state"], "TRACE_STATE_RUNNING");
  EXPECT_EQ(Curl("POST", "/v1/traces", kControl, start).status,
            409);  // Already running.
  EXPECT_EQ(Curl("GET", "/v1/traces/rest_op", kRead).Json()["state"],
            "TRACE_STATE_RUNNING");

  h = Curl("POST", "/v1/traces/rest_op/stop", kControl);
  ASSERT_EQ(h.status, 200) << h.body;
  const json artifact = h.Json()["artifact"];
  const std::string id = artifact["id"];
  const std::string sha = artifact["sha256"];
  EXPECT_EQ(sha, *Sha256File(etl_));
  EXPECT_EQ(artifact["summary"]["logger_name"], "PerfDiag Logger");

  // A download cut short, then resumed by curl -C -, checked with sha256.
  const auto file = dir_.path() / "download.etl";
  h = Curl("GET", "/v1/artifacts/" + id + "/content", kRead, "",
           {"-r", "0-99999", "-o", file.string()});
  EXPECT_EQ(h.status, 206);
  EXPECT_EQ(std::filesystem::file_size(file), 100000u);
  h = Curl("GET", "/v1/artifacts/" + id + "/content", kRead, "",
           {"-C", "-", "-o", file.string()});
  EXPECT_EQ(h.status, 206);
  EXPECT_EQ(*Sha256File(file), sha);
  EXPECT_THAT(h.headers, HasSubstr("ETag: \"" + sha + "\""));
  // Range past the end.
  const std::uint64_t size =
      artifact["size_bytes"].is_string()
          ? std::stoull(artifact["size_bytes"].get<std::string>())
          : artifact["size_bytes"].get<std::uint64_t>();
  h = Curl("GET", "/v1/artifacts/" + id + "/content", kRead, "",
           {"-r", std::to_string(size + 10) + "-"});
  EXPECT_EQ(h.status, 416);

  // Delete needs admin.
  EXPECT_EQ(Curl("DELETE", "/v1/artifacts/" + id, kControl).status, 403);
  EXPECT_EQ(Curl("DELETE", "/v1/artifacts/" + id, kAdmin).status, 200);
  EXPECT_EQ(Curl("GET", "/v1/artifacts/" + id, kRead).status, 404);

  // A gRPC call is counted too.
  v1::AgentInfo ignored;
  EXPECT_EQ(agent_->stub()
                .GetAgentInfo(testing::Ctx().get(), {}, &ignored)
                .error_code(),
            grpc::StatusCode::UNAUTHENTICATED);
  h = Curl("GET", "/metrics", kRead);
  EXPECT_THAT(
      h.body,
      HasSubstr(
          "labtrace_requests_total{transport=\"grpc\",route=\"GetAgentInfo\","
          "code=\"UNAUTHENTICATED\"} 1"));
  EXPECT_EQ(h.status, 200);
  EXPECT_THAT(
      h.body,
      HasSubstr(
          "labtrace_sessions_total{backend=\"wpr\",event=\"completed\"} 1"));
  EXPECT_THAT(
      h.body,
      HasSubstr(
          "labtrace_requests_total{transport=\"rest\",route=\"StartTrace\""));
  EXPECT_THAT(h.body, HasSubstr("labtrace_bytes_served_total"));
}

TEST_F(RestTest, BadInputIsAnsweredPreciselyWhileOthersCarryOn) {
  ASSERT_EQ(Curl("POST", "/v1/traces", kControl,
                 R"({"name": "survivor", "profile": "general"})")
                .status,
            200);
  Http h = Curl("POST", "/v1/traces", kControl, R"({"name": "x", "profile": )");
  EXPECT_EQ(h.status, 400);
  EXPECT_EQ(h.Json()["code"], "INVALID_ARGUMENT");
  h = Curl("POST", "/v1/traces", kControl,
           R"({"name": "x", "profile": "general", "bogus": 1})");
  EXPECT_EQ(h.status, 400);
  EXPECT_THAT(h.Json()["message"].get<std::string>(), HasSubstr("bogus"));
  h = Curl("POST", "/v1/traces", kControl,
           R"({"name": "../x", "profile": "general"})");
  EXPECT_EQ(h.status, 400);
  h = Curl("POST", "/v1/traces", kControl,
           R"({"name": "y", "profile": "nope"})");
  EXPECT_EQ(h.status, 404);
  // A 2 MiB body: refused by size.
  h = Curl("POST", "/v1/traces", kControl, std::string(2 << 20, ' '));
  EXPECT_EQ(h.status, 413);
  // Path traversal in ids never reaches a file.
  // (httplib refuses paths with ".." segments with 400; other ids are
  // unknown: 404.)
  for (const char* p :
       {"/v1/artifacts/..%2F..%2Fetc%2Fpasswd",
        "/v1/artifacts/..%2F..%2Fetc%2Fpasswd/content",
        "/v1/artifacts/%2e%2e/content", "/v1/artifacts/a%2Fb/content"}) {
    EXPECT_THAT(Curl("GET", p, kRead).status, ::testing::AnyOf(400, 404)) << p;
  }
  EXPECT_EQ(Curl("POST", "/v1/traces/nope/stop", kControl).status, 404);
  EXPECT_EQ(Curl("GET", "/v1/no/such/route", kRead).status, 404);
  // The running session never noticed.
  EXPECT_EQ(Curl("GET", "/v1/traces/survivor", kRead).Json()["state"],
            "TRACE_STATE_RUNNING");
  h = Curl("POST", "/v1/stop-all", kAdmin);
  EXPECT_EQ(h.status, 200);
  EXPECT_EQ(h.Json()["results"][0]["session"]["state"],
            "TRACE_STATE_COMPLETED");
}

// The edges of HTTP a web server gets right: duplicate JSON keys, 405 with
// Allow, a POST without a body, suffix and unsatisfiable ranges, 304 without
// a Content-Length, HEAD, oversized headers, garbage; and many keep-alive
// downloads on one connection leave no file descriptor behind.
TEST_F(RestTest, HttpEdgesBehaveLikeAWebServer) {
  Http h = Curl("POST", "/v1/traces", kControl,
                R"({"name": "a", "name": "b", "profile": "general"})");
  EXPECT_EQ(h.status, 400);
  EXPECT_THAT(h.Json()["message"].get<std::string>(),
              HasSubstr("repeats a key"));
  h = Curl("DELETE", "/v1/traces", kAdmin);
  EXPECT_EQ(h.status, 405);
  EXPECT_THAT(h.headers, HasSubstr("Allow: GET, HEAD, POST"));
  EXPECT_EQ(h.Json()["http_status"], 405);

  ASSERT_EQ(Curl("POST", "/v1/traces", kControl,
                 R"({"name": "edge", "profile": "general"})")
                .status,
            200);
  // curl -X POST without -d: no Content-Length at all; answered at once.
  subprocess::Options post;
  post.argv = {"curl", "-s", "-o", "/dev/null", "-w", "%{http_code} %{time_total}",
               "-X", "POST", "-H", std::string("Authorization: Bearer ") + kControl,
               Url("/v1/traces/edge/stop")};
  post.timeout = std::chrono::seconds(30);
  subprocess::Result pr = subprocess::Run(post);
  EXPECT_THAT(pr.output, ::testing::StartsWith("200 ")) << pr.output;
  EXPECT_LT(std::atof(pr.output.c_str() + 4), 5.0) << pr.output;
  h = Curl("GET", "/v1/traces/edge", kRead);
  const std::string id = h.Json()["artifact_id"];
  ASSERT_FALSE(id.empty()) << h.body;
  const std::string content = "/v1/artifacts/" + id + "/content";
  const std::string bytes = testing::ReadTextFile(etl_);
  const std::string sha = *Sha256File(etl_);

  h = Curl("GET", content, kRead, "", {"-r", "-100"});  // The last 100 bytes.
  EXPECT_EQ(h.status, 206);
  EXPECT_EQ(h.body, bytes.substr(bytes.size() - 100));
  h = Curl("GET", content, kRead, "",
           {"-r", std::to_string(bytes.size()) + "-"});
  EXPECT_EQ(h.status, 416);
  EXPECT_THAT(h.headers, HasSubstr("Content-Range: bytes */" +
                                   std::to_string(bytes.size())));
  EXPECT_EQ(h.Json()["code"], "OUT_OF_RANGE");
  h = Curl("GET", content, kRead, "",
           {"-H", "If-None-Match: \"" + sha + "\""});
  EXPECT_EQ(h.status, 304);
  EXPECT_THAT(h.headers, Not(HasSubstr("Content-Length")));
  // The whole file with zstd on the wire, decoded by curl --compressed;
  // a Range is never compressed.
  const auto unpacked = dir_.path() / "unpacked.etl";
  h = Curl("GET", content, kRead, "",
           {"--compressed", "-H", "Accept-Encoding: zstd", "-o",
            unpacked.string()});
  EXPECT_EQ(h.status, 200);
  EXPECT_THAT(h.headers, HasSubstr("Content-Encoding: zstd"));
  EXPECT_THAT(h.headers, HasSubstr("Transfer-Encoding: chunked"));
  EXPECT_EQ(*Sha256File(unpacked), sha);
  h = Curl("GET", content, kRead, "",
           {"-H", "Accept-Encoding: zstd", "-r", "0-99"});
  EXPECT_EQ(h.status, 206);
  EXPECT_THAT(h.headers, Not(HasSubstr("Content-Encoding")));
  EXPECT_EQ(h.body, bytes.substr(0, 100));
  h = Curl("HEAD", content, kRead, "", {"-I"});
  EXPECT_EQ(h.status, 200);
  EXPECT_THAT(h.headers,
              HasSubstr("Content-Length: " + std::to_string(bytes.size())));
  // -I writes the headers where the body would go: nothing follows them.
  EXPECT_THAT(h.body, ::testing::EndsWith("\r\n\r\n"));

  // 16 KiB of headers at most (431, JSON); a garbage request line (400).
  h = Curl("GET", "/v1/info", kRead, "",
           {"-H", "X-Big: " + std::string(20 << 10, 'x')});
  EXPECT_EQ(h.status, 431);
  EXPECT_EQ(h.Json()["http_status"], 431);
  subprocess::Options raw;
  raw.argv = {"/bin/bash", "-c",
              "exec 3<>/dev/tcp/127.0.0.1/" +
                  std::to_string(agent_->rest_port()) +
                  "; printf 'GARBAGE\\r\\n\\r\\n' >&3; "
                  "head -c 12 <&3"};
  raw.timeout = std::chrono::seconds(20);
  subprocess::Result rr = subprocess::Run(raw);
  EXPECT_EQ(rr.output, "HTTP/1.1 400") << rr.Describe();

#ifdef __linux__
  // 60 range requests on one keep-alive connection: no descriptor leaks.
  auto fds = [&] {
    int n = 0;
    for (const auto& e : std::filesystem::directory_iterator(
             "/proc/" + std::to_string(agent_->pid()) + "/fd")) {
      (void)e;
      ++n;
    }
    return n;
  };
  const int before = fds();
  std::vector<std::string> args = {"-r", "0-999"};
  for (int i = 1; i < 60; ++i) {
    args.insert(args.end(), {"--next", "-s", "-o", "/dev/null", "-r",
                             std::to_string(i * 1000) + "-" +
                                 std::to_string(i * 1000 + 999),
                             "-H", std::string("Authorization: Bearer ") + kRead,
                             Url(content)});
  }
  h = Curl("GET", content, kRead, "", args);
  EXPECT_EQ(h.status, 206);
  EXPECT_TRUE(testing::WaitFor([&] { return fds() <= before; },
                               std::chrono::seconds(5)))
      << fds() << " descriptors open, " << before << " before";
#endif
}

}  // namespace
}  // namespace labtrace
