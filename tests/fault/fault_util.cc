#include "tests/fault/fault_util.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstdlib>
#include <fstream>
#include <iostream>
#include <random>
#include <sstream>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/file_util.h"
#include "grpcpp/grpcpp.h"
#include "gtest/gtest.h"

namespace labtrace::fault {

int Scale(int ci, int full) {
  const char* s = std::getenv("LABTRACE_FAULT_SCALE");
  return s != nullptr && std::string(s) == "full" ? full : ci;
}

void Figure(const std::string& text) {
  const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
  std::cout << "[ FIGURE   ] " << (info ? info->name() : "") << ": " << text
            << std::endl;
  ::testing::Test::RecordProperty("figure", text);
}

double MsSince(absl::Time start) {
  return absl::ToDoubleMilliseconds(absl::Now() - start);
}

std::vector<std::pair<std::int64_t, std::vector<std::string>>> Processes() {
  std::vector<std::pair<std::int64_t, std::vector<std::string>>> out;
  std::error_code ec;
  for (auto it = std::filesystem::directory_iterator("/proc", ec);
       !ec && it != std::filesystem::directory_iterator(); it.increment(ec)) {
    std::int64_t pid = 0;
    if (!absl::SimpleAtoi(it->path().filename().string(), &pid)) continue;
    std::ifstream in(it->path() / "cmdline", std::ios::binary);
    std::string all((std::istreambuf_iterator<char>(in)),
                    std::istreambuf_iterator<char>());
    std::vector<std::string> argv;
    std::string cur;
    for (char c : all) {
      if (c == '\0') {
        argv.push_back(cur);
        cur.clear();
      } else {
        cur += c;
      }
    }
    if (!argv.empty()) out.push_back({pid, std::move(argv)});
  }
  return out;
}

int PerfRecordingUnder(const std::filesystem::path& dir) {
  const std::string prefix = dir.string() + "/";
  int n = 0;
  for (const auto& [pid, argv] : Processes()) {
    if (argv.size() < 2 || argv[1] != "record") continue;
    for (std::size_t i = 2; i + 1 < argv.size(); ++i) {
      if (argv[i] == "-o" && absl::StartsWith(argv[i + 1], prefix)) {
        ++n;
        break;
      }
    }
  }
  return n;
}

int ProcessesWithArg(const std::string& marker) {
  int n = 0;
  for (const auto& [pid, argv] : Processes()) {
    for (std::size_t i = 1; i < argv.size(); ++i) {
      if (argv[i] == marker) {
        ++n;
        break;
      }
    }
  }
  return n;
}

std::int64_t RssKib(std::int64_t pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/status");
  std::string line;
  while (std::getline(in, line)) {
    if (absl::StartsWith(line, "VmRSS:")) {
      std::istringstream ss(line.substr(6));
      std::int64_t kib = 0;
      ss >> kib;
      return kib;
    }
  }
  return 0;
}

std::filesystem::path FakeWprState(const std::filesystem::path& dir) {
  return dir / "wpr_state";
}

int FakeWprInstances(const std::filesystem::path& dir) {
  int n = 0;
  std::error_code ec;
  for (auto it = std::filesystem::directory_iterator(
           FakeWprState(dir) / "instances", ec);
       !ec && it != std::filesystem::directory_iterator(); it.increment(ec)) {
    ++n;
  }
  return n;
}

void SetFakeWprKnobs(const std::filesystem::path& dir,
                     const std::vector<std::string>& lines) {
  testing::WriteTextFile(FakeWprState(dir) / "control.env",
                         absl::StrJoin(lines, "\n") + "\n");
}

std::unique_ptr<testing::AgentProcess> MakeFaultAgent(
    const FaultAgentOptions& o) {
  std::filesystem::create_directories(FakeWprState(o.dir));
  const std::string yaml = absl::StrCat(
      "limits:\n"
      "  max_sessions: 64\n"
      "  max_commands: 48\n"
      "  max_downloads: 48\n",
      o.limits,
      "wpr:\n"
      "  path: ", testing::FakeWprBinary(), "\n"
      "  stop_timeout: 30s\n"
      "exec:\n"
      "  enabled: true\n"
      "  allow: [/bin/sleep, /bin/sh]\n"
      "profiles:\n"
      "  - {name: general, backend: wpr, args: [GeneralProfile]}\n"
      "  - {name: cpu, backend: perf, args: [\"-F\", \"199\"]}\n");
  std::vector<std::string> args = {"--log-level", "info"};
  args.insert(args.end(), o.extra_args.begin(), o.extra_args.end());
  return std::make_unique<testing::AgentProcess>(testing::AgentProcess::Options{
      o.data_dir.empty() ? o.dir / "data" : o.data_dir,
      yaml,
      args,
      {"FAKE_WPR_STATE_DIR=" + FakeWprState(o.dir).string(),
       "FAKE_WPR_ETL_SOURCE=" + o.etl_source.string()}});
}

std::unique_ptr<v1::TraceAgent::Stub> NewStub(const std::string& address) {
  grpc::ChannelArguments args;
  // A channel of its own: gRPC would otherwise share one connection between
  // channels to the same address.
  static std::atomic<int> unique{0};
  args.SetInt("labtrace.test.channel", ++unique);
  args.SetMaxReceiveMessageSize(64 << 20);
  return v1::TraceAgent::NewStub(grpc::CreateCustomChannel(
      address, grpc::InsecureChannelCredentials(), args));
}

Verified VerifyArtifacts(v1::TraceAgent::Stub& stub) {
  Verified v;
  std::string token;
  for (int page = 0; page < 1000; ++page) {
    v1::ListArtifactsRequest req;
    req.set_page_size(500);
    req.set_page_token(token);
    v1::ListArtifactsResponse list;
    grpc::Status s = stub.ListArtifacts(testing::Ctx().get(), req, &list);
    if (!s.ok()) {
      v.problems.push_back("ListArtifacts: " + s.error_message());
      return v;
    }
    for (const v1::Artifact& a : list.artifacts()) {
      ++v.listed;
      v1::FetchArtifactRequest f;
      f.set_artifact_id(a.id());
      auto ctx = testing::Ctx(std::chrono::seconds(120));
      auto reader = stub.FetchArtifact(ctx.get(), f);
      Sha256 sha;
      std::uint64_t bytes = 0;
      v1::ArtifactChunk c;
      while (reader->Read(&c)) {
        sha.Update(c.data());
        bytes += c.data().size();
      }
      grpc::Status fs = reader->Finish();
      const std::string got = sha.HexDigest();
      if (!fs.ok()) {
        v.problems.push_back(a.id() + ": fetch: " + fs.error_message());
      } else if (got != a.sha256() || bytes != a.size_bytes()) {
        v.problems.push_back(absl::StrCat(a.id(), ": sha256 ", got, " size ",
                                          bytes, ", listed ", a.sha256(), " ",
                                          a.size_bytes()));
      } else {
        ++v.matching;
      }
    }
    token = list.next_page_token();
    if (token.empty()) break;
  }
  return v;
}

int Connect(int port) {
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return -1;
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<std::uint16_t>(port));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
    ::close(fd);
    return -1;
  }
  return fd;
}

namespace {

// Reads until the peer closes or `deadline`; false on timeout.
bool ReadUntilClosed(int fd, absl::Time deadline, std::string* out) {
  char buf[16384];
  for (;;) {
    const absl::Duration left = deadline - absl::Now();
    if (left <= absl::ZeroDuration()) return false;
    pollfd p{fd, POLLIN, 0};
    const int r = ::poll(&p, 1, static_cast<int>(absl::ToInt64Milliseconds(left)) + 1);
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) return false;
    const ssize_t n = ::read(fd, buf, sizeof(buf));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return true;  // Closed (or reset).
    if (out != nullptr) out->append(buf, static_cast<std::size_t>(n));
  }
}

}  // namespace

double MsUntilClosed(int fd, absl::Duration timeout) {
  const absl::Time start = absl::Now();
  if (!ReadUntilClosed(fd, start + timeout, nullptr)) return -1;
  return MsSince(start);
}

HttpAnswer HttpRequest(int port, const std::string& method,
                       const std::string& path, absl::Duration timeout,
                       const std::string& body) {
  HttpAnswer a;
  const absl::Time deadline = absl::Now() + timeout;
  const int fd = Connect(port);
  if (fd < 0) return a;
  const std::string req =
      absl::StrCat(method, " ", path, " HTTP/1.1\r\nHost: 127.0.0.1\r\n",
                   "Connection: close\r\nContent-Length: ", body.size(),
                   "\r\n\r\n", body);
  if (::send(fd, req.data(), req.size(), MSG_NOSIGNAL) !=
      static_cast<ssize_t>(req.size())) {
    ::close(fd);
    return a;
  }
  std::string resp;
  const bool closed = ReadUntilClosed(fd, deadline, &resp);
  ::close(fd);
  if (!closed || !absl::StartsWith(resp, "HTTP/1.1 ") || resp.size() < 12) {
    return a;
  }
  (void)absl::SimpleAtoi(resp.substr(9, 3), &a.status);
  const std::size_t start = resp.find("\r\n\r\n");
  if (start != std::string::npos) a.body = resp.substr(start + 4);
  return a;
}

void WriteRandomFile(const std::filesystem::path& path, std::uint64_t bytes) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  std::mt19937_64 rng(bytes);
  std::vector<std::uint64_t> block(8192);
  for (std::uint64_t done = 0; done < bytes;) {
    for (auto& w : block) w = rng();
    const std::uint64_t n =
        std::min<std::uint64_t>(bytes - done, block.size() * sizeof(block[0]));
    out.write(reinterpret_cast<const char*>(block.data()),
              static_cast<std::streamsize>(n));
    done += n;
  }
  ASSERT_TRUE(out.good()) << "cannot write " << path;
}

}  // namespace labtrace::fault
