// Security of the real agent over loopback: bearer tokens and roles, TLS,
// mutual TLS, the audit log, and the controller using all of them.
// Certificates are made for the test by the openssl command line tool.

#include "common/file_util.h"
#include "common/subprocess.h"
#include "gmock/gmock.h"
#include "grpc/health/v1/health.grpc.pb.h"
#include "gtest/gtest.h"
#include "tests/testing/test_util.h"

namespace labtrace {
namespace {

using testing::Ctx;
using ::testing::HasSubstr;
using ::testing::Not;

constexpr char kReadToken[] = "read-secret-1";
constexpr char kControlToken[] = "control-secret-2";
constexpr char kAdminToken[] = "admin-secret-3";

std::string TokensYaml() {
  return "tokens:\n"
         "  - {name: dashboard, role: read, sha256: " +
         Sha256Hex(kReadToken) + "}\n" +
         "  - {name: ci-bot, role: control, sha256: " +
         Sha256Hex(kControlToken) + "}\n" +
         "  - {name: oncall, role: admin, sha256: " + Sha256Hex(kAdminToken) +
         "}\n";
}

// Runs openssl; fails the test with its output on error.
void OpenSsl(const std::filesystem::path& dir, std::vector<std::string> args) {
  subprocess::Options o;
  o.argv = {"openssl"};
  o.argv.insert(o.argv.end(), args.begin(), args.end());
  o.working_dir = dir.string();
  o.timeout = std::chrono::seconds(60);
  subprocess::Result r = subprocess::Run(o);
  ASSERT_TRUE(r.ok()) << "openssl " << args[0] << ": " << r.Describe() << "\n"
                      << r.output;
}

// A CA and a certificate signed by it (EC P-256, valid one day).
void MakeCa(const std::filesystem::path& dir, const std::string& name) {
  OpenSsl(dir,
          {"req", "-x509", "-newkey", "ec", "-pkeyopt",
           "ec_paramgen_curve:prime256v1", "-nodes", "-keyout", name + ".key",
           "-out", name + ".pem", "-days", "1", "-subj", "/CN=" + name});
}
void MakeCert(const std::filesystem::path& dir, const std::string& ca,
              const std::string& name, const std::string& cn, bool server) {
  OpenSsl(dir, {"req", "-newkey", "ec", "-pkeyopt",
                "ec_paramgen_curve:prime256v1", "-nodes", "-keyout",
                name + ".key", "-out", name + ".csr", "-subj", "/CN=" + cn});
  testing::WriteTextFile(dir / (name + ".ext"),
                         server ? "subjectAltName=DNS:localhost,IP:127.0.0.1\n"
                                : "extendedKeyUsage=clientAuth\n");
  OpenSsl(dir, {"x509", "-req", "-in", name + ".csr", "-CA", ca + ".pem",
                "-CAkey", ca + ".key", "-CAcreateserial", "-out", name + ".pem",
                "-days", "1", "-extfile", name + ".ext"});
}

class SecurityTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    if (subprocess::FindProgram("openssl").empty()) return;
    dir_ = new testing::TempDir();
    const auto& d = dir_->path();
    MakeCa(d, "ca");
    MakeCa(d, "other_ca");
    MakeCert(d, "ca", "server", "localhost", true);
    MakeCert(d, "ca", "client", "ci-client", false);
    MakeCert(d, "other_ca", "stranger", "stranger", false);
  }
  static void TearDownTestSuite() { delete dir_; }

  void SetUp() override {
    if (dir_ == nullptr) GTEST_SKIP() << "the openssl command is not installed";
  }

  std::unique_ptr<testing::AgentProcess> StartAgent(
      const std::string& name, const std::string& yaml,
      std::vector<std::string> args = {}) {
    auto agent =
        std::make_unique<testing::AgentProcess>(testing::AgentProcess::Options{
            dir_->path() / name, yaml, std::move(args), {}});
    std::string error;
    EXPECT_TRUE(agent->Start(&error)) << error;
    return agent;
  }

  std::string Pem(const std::string& file) {
    return testing::ReadTextFile(dir_->path() / file);
  }

  std::shared_ptr<grpc::Channel> TlsChannel(int port,
                                            const std::string& client) {
    grpc::SslCredentialsOptions ssl;
    ssl.pem_root_certs = Pem("ca.pem");
    if (!client.empty()) {
      ssl.pem_cert_chain = Pem(client + ".pem");
      ssl.pem_private_key = Pem(client + ".key");
    }
    // An IP address (no DNS lookup) with the certificate's name checked.
    grpc::ChannelArguments args;
    args.SetSslTargetNameOverride("localhost");
    return grpc::CreateCustomChannel("127.0.0.1:" + std::to_string(port),
                                     grpc::SslCredentials(ssl), args);
  }

  static grpc::StatusCode Info(v1::TraceAgent::Stub& stub,
                               const std::string& token,
                               std::string* message = nullptr) {
    auto ctx = Ctx(std::chrono::seconds(10));
    if (!token.empty()) ctx->AddMetadata("authorization", "Bearer " + token);
    v1::AgentInfo info;
    grpc::Status s = stub.GetAgentInfo(ctx.get(), {}, &info);
    if (message) *message = s.error_message();
    return s.error_code();
  }

  static testing::TempDir* dir_;
};

testing::TempDir* SecurityTest::dir_ = nullptr;

TEST_F(SecurityTest, TokensAndRolesOverGrpc) {
  auto agent = StartAgent(
      "tokens", TokensYaml() + "profiles: [{name: p, backend: perf}]\n");
  auto& stub = agent->stub();
  std::string msg;
  EXPECT_EQ(Info(stub, "", &msg), grpc::StatusCode::UNAUTHENTICATED);
  EXPECT_THAT(msg, HasSubstr("needs a bearer token"));
  EXPECT_EQ(Info(stub, "wrong-token", &msg), grpc::StatusCode::UNAUTHENTICATED);
  EXPECT_THAT(msg, Not(HasSubstr("wrong-token")));  // Secrets never echoed.
  EXPECT_EQ(Info(stub, kReadToken), grpc::StatusCode::OK);

  auto call = [&](const std::string& token, auto fn) {
    auto ctx = Ctx(std::chrono::seconds(10));
    ctx->AddMetadata("authorization", "Bearer " + token);
    return fn(ctx.get());
  };
  // read may not cancel (control); the refusal names the role.
  grpc::Status s = call(kReadToken, [&](grpc::ClientContext* c) {
    v1::CancelTraceRequest r;
    r.set_name("x");
    v1::TraceSession out;
    return stub.CancelTrace(c, r, &out);
  });
  EXPECT_EQ(s.error_code(), grpc::StatusCode::PERMISSION_DENIED);
  EXPECT_THAT(
      s.error_message(),
      HasSubstr("\"dashboard\" has role read; CancelTrace needs control"));
  // control may (the name is unknown, so NOT_FOUND: past authorization).
  s = call(kControlToken, [&](grpc::ClientContext* c) {
    v1::CancelTraceRequest r;
    r.set_name("x");
    v1::TraceSession out;
    return stub.CancelTrace(c, r, &out);
  });
  EXPECT_EQ(s.error_code(), grpc::StatusCode::NOT_FOUND);
  // stop-all needs admin.
  auto stop_all = [&](grpc::ClientContext* c) {
    v1::StopAllTracesResponse out;
    return stub.StopAllTraces(c, {}, &out);
  };
  EXPECT_EQ(call(kControlToken, stop_all).error_code(),
            grpc::StatusCode::PERMISSION_DENIED);
  EXPECT_EQ(call(kAdminToken, stop_all).error_code(), grpc::StatusCode::OK);

  // The health service stays open (liveness probes carry no token).
  auto health = grpc::health::v1::Health::NewStub(agent->channel());
  grpc::health::v1::HealthCheckResponse hr;
  EXPECT_TRUE(health->Check(Ctx().get(), {}, &hr).ok());

  // Audit: who did what, never a token.
  const std::string audit =
      testing::ReadTextFile(dir_->path() / "tokens" / "audit.log");
  EXPECT_THAT(audit, HasSubstr("caller=\"ci-bot\""));
  EXPECT_THAT(audit, HasSubstr("op=CancelTrace target=\"x\" result=NOT_FOUND"));
  EXPECT_THAT(audit, HasSubstr("caller=\"oncall\""));
  EXPECT_THAT(audit, HasSubstr("op=StopAllTraces"));
  for (const char* t : {kReadToken, kControlToken, kAdminToken}) {
    EXPECT_THAT(audit, Not(HasSubstr(t)));
  }
}

TEST_F(SecurityTest, TlsRefusesPlaintextClients) {
  const std::string tls =
      "tls:\n  cert_file: " + (dir_->path() / "server.pem").string() +
      "\n  key_file: " + (dir_->path() / "server.key").string() + "\n";
  auto agent = StartAgent("tls", tls);
  auto tls_stub = v1::TraceAgent::NewStub(TlsChannel(agent->port(), ""));
  EXPECT_EQ(Info(*tls_stub, ""), grpc::StatusCode::OK);
  // The plaintext stub of AgentProcess cannot talk to it.
  EXPECT_EQ(Info(agent->stub(), ""), grpc::StatusCode::UNAVAILABLE);
}

TEST_F(SecurityTest, MutualTlsNeedsACertificateFromTheClientCa) {
  const std::string tls =
      "tls:\n  cert_file: " + (dir_->path() / "server.pem").string() +
      "\n  key_file: " + (dir_->path() / "server.key").string() +
      "\n  client_ca_file: " + (dir_->path() / "ca.pem").string() + "\n";
  auto agent = StartAgent("mtls", tls + TokensYaml());
  auto good = v1::TraceAgent::NewStub(TlsChannel(agent->port(), "client"));
  auto none = v1::TraceAgent::NewStub(TlsChannel(agent->port(), ""));
  auto stranger =
      v1::TraceAgent::NewStub(TlsChannel(agent->port(), "stranger"));
  EXPECT_EQ(Info(*none, kReadToken), grpc::StatusCode::UNAVAILABLE);
  EXPECT_EQ(Info(*stranger, kReadToken), grpc::StatusCode::UNAVAILABLE);
  EXPECT_EQ(Info(*good, kReadToken), grpc::StatusCode::OK);
  // Certificate and token together: the audit names both.
  auto ctx = Ctx();
  ctx->AddMetadata("authorization", std::string("Bearer ") + kControlToken);
  v1::CancelTraceRequest r;
  r.set_name("y");
  v1::TraceSession out;
  good->CancelTrace(ctx.get(), r, &out);
  EXPECT_THAT(testing::ReadTextFile(dir_->path() / "mtls" / "audit.log"),
              HasSubstr("caller=\"ci-bot (cert:ci-client)\""));
}

// curl against the REST listener; returns the HTTP status (0: no answer).
int CurlStatus(std::vector<std::string> args) {
  subprocess::Options o;
  o.argv = {"curl", "-s",           "-o",         "/dev/null",
            "-w",   "%{http_code}", "--max-time", "20"};
  o.argv.insert(o.argv.end(), args.begin(), args.end());
  subprocess::Result r = subprocess::Run(o);
  return std::atoi(r.output.c_str());
}

TEST_F(SecurityTest, RestListenerUsesTheSameTlsAndTokens) {
  if (subprocess::FindProgram("curl").empty())
    GTEST_SKIP() << "curl is not installed";
  const auto& d = dir_->path();
  const std::string tls = "tls:\n  cert_file: " + (d / "server.pem").string() +
                          "\n  key_file: " + (d / "server.key").string() +
                          "\n  client_ca_file: " + (d / "ca.pem").string() +
                          "\n";
  auto agent = StartAgent("rest_tls", tls + TokensYaml());
  const std::string base =
      "https://localhost:" + std::to_string(agent->rest_port());
  const std::vector<std::string> ca = {"--cacert", (d / "ca.pem").string()};
  const std::vector<std::string> cert = {"--cert", (d / "client.pem").string(),
                                         "--key", (d / "client.key").string()};
  auto with = [](std::vector<std::string> a,
                 const std::vector<std::string>& b) {
    a.insert(a.end(), b.begin(), b.end());
    return a;
  };
  // Mutual TLS: a client certificate from the CA is required.
  EXPECT_EQ(CurlStatus(with(with(ca, cert), {base + "/healthz"})), 200);
  EXPECT_EQ(CurlStatus(with(ca, {base + "/healthz"})), 0);
  EXPECT_EQ(CurlStatus(with(with(ca, {"--cert", (d / "stranger.pem").string(),
                                      "--key", (d / "stranger.key").string()}),
                            {base + "/healthz"})),
            0);
  // Plain HTTP to the TLS port gets no answer.
  EXPECT_EQ(CurlStatus({"http://127.0.0.1:" +
                        std::to_string(agent->rest_port()) + "/healthz"}),
            0);
  // Tokens apply on top.
  EXPECT_EQ(CurlStatus(with(with(ca, cert), {base + "/v1/info"})), 401);
  EXPECT_EQ(
      CurlStatus(with(with(ca, cert),
                      {"-H", std::string("Authorization: Bearer ") + kReadToken,
                       base + "/v1/info"})),
      200);
}

// Exposure rules for a listener beyond loopback: tokens need TLS (else they
// cross the network in clear text), TLS needs client authentication
// (client_ca_file or tokens); --insecure overrides either, loudly.
TEST_F(SecurityTest, NonLoopbackNeedsTlsAndAuthentication) {
  const auto& d = dir_->path();
  const std::filesystem::path dir = d / "exposure";
  std::filesystem::create_directories(dir);
  auto refused = [&](const std::string& yaml) {
    testing::WriteTextFile(dir / "agent.yaml",
                           "data_dir: " + (dir / "data").string() + "\n" + yaml);
    subprocess::Options o;
    o.argv = {testing::AgentBinary(), "--config", (dir / "agent.yaml").string(),
              "--listen", "0.0.0.0:0", "--rest-listen", "off"};
    o.timeout = std::chrono::seconds(30);
    subprocess::Result r = subprocess::Run(o);
    EXPECT_EQ(r.exit_code, 2) << r.Describe() << r.output;
    return r.output;
  };
  EXPECT_THAT(refused(TokensYaml()),
              HasSubstr("with tokens but without TLS: bearer tokens would "
                        "cross the lab network in clear text"));
  const std::string tls_only = "tls:\n  cert_file: " +
                               (d / "server.pem").string() +
                               "\n  key_file: " + (d / "server.key").string() +
                               "\n";
  EXPECT_THAT(refused(tls_only), HasSubstr("client"));

  // TLS and tokens: allowed, and nothing insecure to warn about.
  auto agent = StartAgent("any", tls_only + TokensYaml(),
                          {"--listen", "0.0.0.0:0"});
  auto stub = v1::TraceAgent::NewStub(TlsChannel(agent->port(), ""));
  EXPECT_EQ(Info(*stub, kReadToken), grpc::StatusCode::OK);
  EXPECT_EQ(Info(*stub, ""), grpc::StatusCode::UNAUTHENTICATED);
  EXPECT_THAT(agent->output(), Not(HasSubstr("INSECURE")));

  // --insecure: tokens in clear text are allowed, with a warning that says so.
  auto loud = StartAgent("loud", TokensYaml(),
                         {"--listen", "0.0.0.0:0", "--insecure"});
  EXPECT_EQ(Info(loud->stub(), kReadToken), grpc::StatusCode::OK);
  EXPECT_TRUE(testing::WaitFor(
      [&] {
        return loud->output().find("INSECURE") != std::string::npos;
      },
      std::chrono::seconds(5)));
  EXPECT_THAT(loud->output(), HasSubstr("bearer tokens travel in clear text"));
}

TEST_F(SecurityTest, ControllerUsesTlsAndTokensFromTheInventory) {
  const auto& d = dir_->path();
  const std::string tls = "tls:\n  cert_file: " + (d / "server.pem").string() +
                          "\n  key_file: " + (d / "server.key").string() +
                          "\n  client_ca_file: " + (d / "ca.pem").string() +
                          "\n";
  auto agent = StartAgent("ctl", tls + TokensYaml());
  testing::WriteTextFile(d / "token", std::string(kControlToken) + "\n");
  const std::string host = "127.0.0.1:" + std::to_string(agent->port());
  testing::WriteTextFile(
      d / "inv.yaml",
      "defaults:\n"
      "  tls: {ca_file: ca.pem, cert_file: client.pem, key_file: client.key,\n"
      "        server_name: localhost}\n"
      "  token_file: token\n"
      "hosts:\n"
      "  - {name: secure, address: \"" +
          host +
          "\"}\n"
          "  - {name: no_token, address: \"" +
          host + "\", token_env: LABTRACE_NO_SUCH_VAR_X}\n");
  subprocess::Options o;
  o.argv = {testing::ControllerBinary(), "info", "--inventory",
            (d / "inv.yaml").string()};
  subprocess::Result r = subprocess::Run(o);
  // token_env names an unset variable: a configuration error before anything is sent.
  EXPECT_EQ(r.exit_code, 2) << r.output;
  EXPECT_THAT(r.output, HasSubstr("LABTRACE_NO_SUCH_VAR_X"));

  testing::WriteTextFile(
      d / "inv.yaml",
      "defaults:\n"
      "  tls: {ca_file: ca.pem, cert_file: client.pem, key_file: client.key,\n"
      "        server_name: localhost}\n"
      "  token_file: token\n"
      "hosts:\n"
      "  - {name: secure, address: \"" +
          host + "\"}\n");
  r = subprocess::Run(o);
  EXPECT_EQ(r.exit_code, 0) << r.output;
  o.argv = {testing::ControllerBinary(), "stop-all", "--inventory",
            (d / "inv.yaml").string()};
  r = subprocess::Run(o);
  EXPECT_EQ(r.exit_code, 4) << r.output;  // ci-bot is control, not admin.
  EXPECT_THAT(r.output, HasSubstr("StopAllTraces needs admin"));
  EXPECT_THAT(r.output, Not(HasSubstr(kControlToken)));
}

}  // namespace
}  // namespace labtrace
