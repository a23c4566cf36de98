#include "agent/config/agent_config.h"

#include "common/file_util.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/testing/test_util.h"

namespace labtrace::agent {
namespace {

absl::StatusOr<AgentCommandLine> Parse(std::vector<std::string> args) {
  std::vector<const char*> argv = {"labtrace-agent"};
  for (const auto& a : args) argv.push_back(a.c_str());
  return ParseAgentCommandLine(static_cast<int>(argv.size()), argv.data());
}

TEST(AgentConfigTest, Defaults) {
  auto c = Parse({});
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->config.listen, "127.0.0.1:7411");
  EXPECT_EQ(c->config.max_sessions, 8);
  EXPECT_EQ(c->config.max_duration, absl::Hours(4));
  EXPECT_EQ(c->config.wpr.path, "wpr.exe");
  EXPECT_EQ(c->config.wpr.stop_timeout, absl::Seconds(600));
  EXPECT_EQ(c->config.wpr.start_timeout, absl::Seconds(60));
  ASSERT_FALSE(c->config.profiles.empty());
#ifdef _WIN32
  EXPECT_EQ(c->config.profiles[0].name, "default");  // Embedded WPR profile.
#else
  EXPECT_EQ(c->config.profiles[0].name, "cpu");
#endif
}

TEST(AgentConfigTest, HelpAndVersion) {
  auto h = Parse({"--help"});
  ASSERT_TRUE(h.ok());
  EXPECT_NE(h->print_and_exit.find("--max-sessions"), std::string::npos);
  EXPECT_NE(h->print_and_exit.find("grpcurl"), std::string::npos);
  auto v = Parse({"--version"});
  EXPECT_NE(v->print_and_exit.find(LABTRACE_VERSION), std::string::npos);
}

TEST(AgentConfigTest, FileThenFlags) {
  testing::TempDir dir;
  testing::WriteTextFile(dir.path() / "a.yaml", R"(
listen: 0.0.0.0:9000
data_dir: /tmp/x
limits:
  max_sessions: 3
  max_duration: 10m
wpr:
  path: C:\tools\wpr.exe
  skip_pdb_gen: false
  stop_timeout: 20m
profiles:
  - name: mine
    backend: wpr
    args: [GeneralProfile, CPU]
    modes: [memory]
)");
  auto c = Parse({"--config", (dir.path() / "a.yaml").string(),
                  "--listen=127.0.0.1:1234", "--max-sessions", "5"});
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->config.listen, "127.0.0.1:1234");  // Flag wins.
  EXPECT_EQ(c->config.max_sessions, 5);
  EXPECT_EQ(c->config.max_duration, absl::Minutes(10));
  EXPECT_EQ(c->config.data_dir, "/tmp/x");
  EXPECT_FALSE(c->config.wpr.skip_pdb_gen);
  EXPECT_EQ(c->config.wpr.stop_timeout, absl::Minutes(20));
  ASSERT_EQ(c->config.profiles.size(), 1u);
  EXPECT_EQ(c->config.profiles[0].args,
            (std::vector<std::string>{"GeneralProfile", "CPU"}));
  EXPECT_FALSE(c->config.profiles[0].file_mode);
  EXPECT_TRUE(c->config.profiles[0].memory_mode);
}

TEST(AgentConfigTest, ErrorsNameFileAndLine) {
  testing::TempDir dir;
  const auto p = dir.path() / "bad.yaml";
  testing::WriteTextFile(p, "listen: x:1\nlimits:\n  max_sesions: 3\n");
  auto c = Parse({"--config", p.string()});
  ASSERT_FALSE(c.ok());
  EXPECT_NE(c.status().message().find("bad.yaml:3"), absl::string_view::npos)
      << c.status();
  EXPECT_NE(c.status().message().find("max_sesions"), absl::string_view::npos);

  testing::WriteTextFile(p, "limits: {max_sessions: [1\n");
  c = Parse({"--config", p.string()});
  ASSERT_FALSE(c.ok());
  EXPECT_NE(c.status().message().find("bad.yaml:"), absl::string_view::npos)
      << c.status();

  testing::WriteTextFile(p, "limits:\n  max_duration: forever\n");
  c = Parse({"--config", p.string()});
  ASSERT_FALSE(c.ok());
  EXPECT_NE(c.status().message().find("bad duration"), absl::string_view::npos)
      << c.status();

  testing::WriteTextFile(p, "profiles:\n  - {name: a, backend: dtrace}\n");
  c = Parse({"--config", p.string()});
  ASSERT_FALSE(c.ok());
  EXPECT_NE(c.status().message().find("unknown backend"),
            absl::string_view::npos);

  testing::WriteTextFile(p,
                         "profiles:\n  - {name: a, backend: perf}\n  - {name: "
                         "a, backend: perf}\n");
  c = Parse({"--config", p.string()});
  ASSERT_FALSE(c.ok());
  EXPECT_NE(c.status().message().find("defined twice"),
            absl::string_view::npos);
}

TEST(AgentConfigTest, ExampleConfigInDeployParses) {
  auto c = Parse(
      {"--config", testing::SourcePath("deploy/agent.example.yaml").string()});
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->config.profiles.size(), 4u);
  EXPECT_EQ(c->config.wpr.stop_timeout, absl::Seconds(600));
}

TEST(AgentConfigTest, NonLoopbackListenNeedsInsecure) {
  EXPECT_TRUE(IsLoopbackListenAddress("127.0.0.1:7411"));
  EXPECT_TRUE(IsLoopbackListenAddress("127.1.2.3:0"));
  EXPECT_TRUE(IsLoopbackListenAddress("localhost:7411"));
  EXPECT_TRUE(IsLoopbackListenAddress("[::1]:7411"));
  EXPECT_FALSE(IsLoopbackListenAddress("0.0.0.0:7411"));
  EXPECT_FALSE(IsLoopbackListenAddress("[::]:7411"));
  EXPECT_FALSE(IsLoopbackListenAddress("10.0.0.5:7411"));
  // A name that only starts like a loopback address is not one.
  EXPECT_FALSE(IsLoopbackListenAddress("127.evil.example:7411"));
  EXPECT_FALSE(IsLoopbackListenAddress("127.0.0.1.evil.example:7411"));
  EXPECT_FALSE(IsLoopbackListenAddress("127.0.0.256:7411"));
  EXPECT_TRUE(IsLoopbackListenAddress("127.0.0.1:0"));
  auto refused = Parse({"--listen", "0.0.0.0:7411"});
  EXPECT_EQ(refused.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_TRUE(Parse({"--listen", "0.0.0.0:7411", "--insecure"}).ok());
}

TEST(AgentConfigTest, ExposedListenersNeedTlsAndAnIdentity) {
  testing::TempDir dir;
  const auto cfg = dir.path() / "a.yaml";
  const std::string token =
      "tokens:\n  - {name: ci, role: admin, sha256: " + std::string(64, 'a') +
      "}\n";
  const std::string tls = "tls: {cert_file: c.pem, key_file: k.pem}\n";
  auto parse = [&](const std::string& yaml, std::vector<std::string> extra) {
    testing::WriteTextFile(cfg, yaml);
    std::vector<std::string> args = {"--config", PathToUtf8(cfg), "--listen",
                                     "0.0.0.0:7411"};
    args.insert(args.end(), extra.begin(), extra.end());
    return Parse(args);
  };
  // Tokens without TLS: in clear text on the network.
  auto clear = parse(token, {});
  EXPECT_EQ(clear.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(std::string(clear.status().message()),
              ::testing::HasSubstr("clear text"));
  // TLS alone: everyone is an anonymous admin.
  auto anonymous = parse(tls, {});
  EXPECT_THAT(std::string(anonymous.status().message()),
              ::testing::HasSubstr("anonymous admin"));
  EXPECT_TRUE(parse(tls + token, {}).ok());
  EXPECT_TRUE(parse("tls: {cert_file: c.pem, key_file: k.pem, "
                    "client_ca_file: ca.pem}\n",
                    {})
                  .ok());
  EXPECT_TRUE(parse(token, {"--insecure"}).ok());
  // Only the REST listener exposed counts too.
  testing::WriteTextFile(cfg, "rest_listen: 0.0.0.0:7412\n");
  EXPECT_FALSE(Parse({"--config", PathToUtf8(cfg)}).ok());
}

TEST(AgentConfigTest, Utf8DataDirLogFileAndConfigPath) {
  testing::TempDir dir;
  const auto cfg = dir.path() / PathFromUtf8("agent \xc3\xbc.yaml");
  testing::WriteTextFile(
      cfg, "data_dir: \"D:/lab data \xc3\xbc\"\nlog_file: logs/agent.log\n");
  auto c = Parse({"--config", PathToUtf8(cfg)});
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(PathToUtf8(c->config.data_dir), "D:/lab data \xc3\xbc");
  EXPECT_EQ(PathToUtf8(c->config.log_file), "logs/agent.log");
  EXPECT_EQ(c->config_path, cfg);
  auto f = Parse({"--data-dir", "C:/\xe6\x97\xa5 dir", "--log-file", "a.log"});
  ASSERT_TRUE(f.ok()) << f.status();
  EXPECT_EQ(PathToUtf8(f->config.data_dir), "C:/\xe6\x97\xa5 dir");
}

#ifdef _WIN32
TEST(AgentConfigTest, WindowsDefaultsLiveUnderProgramData) {
  const std::string data = PathToUtf8(DefaultDataDir());
  EXPECT_NE(data.find("labtrace"), std::string::npos) << data;
  EXPECT_EQ(DefaultConfigPath(), DefaultDataDir() / "agent.yaml");
}
#endif

TEST(AgentConfigTest, BadFlags) {
  EXPECT_FALSE(Parse({"--max-sessions", "0"}).ok());
  EXPECT_FALSE(Parse({"--max-sessions", "abc"}).ok());
  EXPECT_FALSE(Parse({"--nope"}).ok());
  EXPECT_FALSE(Parse({"--listen"}).ok());
  EXPECT_FALSE(Parse({"--max-duration", "-5s"}).ok());
  EXPECT_FALSE(Parse({"--config", "/nonexistent.yaml"}).ok());
  EXPECT_FALSE(Parse({"stray"}).ok());
}

}  // namespace
}  // namespace labtrace::agent
