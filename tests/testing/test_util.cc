#include "tests/testing/test_util.h"

#ifndef _WIN32
#include <signal.h>
#endif

#include <cstdlib>
#include <fstream>
#include <random>
#include <sstream>
#include <thread>

#include "common/file_util.h"
#include "gtest/gtest.h"

namespace labtrace::testing {

TempDir::TempDir() {
  std::error_code ec;
  std::filesystem::path base = std::filesystem::temp_directory_path(ec);
  if (ec) base = ".";
  std::random_device rd;
  std::mt19937_64 rng((static_cast<std::uint64_t>(rd()) << 32) ^ rd());
  for (int attempt = 0; attempt < 100; ++attempt) {
    std::filesystem::path p =
        base / ("labtrace_test." + std::to_string(rng() % 1000000000000ULL));
    if (std::filesystem::create_directory(p, ec)) {
      path_ = p;
      return;
    }
  }
  ADD_FAILURE() << "cannot create a temp dir under " << PathToUtf8(base);
}

TempDir::~TempDir() {
  std::error_code ec;
  if (!path_.empty()) std::filesystem::remove_all(path_, ec);
}

void SetEnv(const std::string& name, const std::string& value) {
#ifdef _WIN32
  // Wide, so values (paths) outside the ANSI code page survive.
  _wputenv_s(PathFromUtf8(name).c_str(), PathFromUtf8(value).c_str());
#else
  ::setenv(name.c_str(), value.c_str(), 1);
#endif
}

void UnsetEnv(const std::string& name) {
#ifdef _WIN32
  _wputenv_s(PathFromUtf8(name).c_str(), L"");
#else
  ::unsetenv(name.c_str());
#endif
}

bool WaitFor(const std::function<bool()>& condition,
             std::chrono::milliseconds timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (!condition()) {
    if (std::chrono::steady_clock::now() >= deadline) return condition();
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  return true;
}

std::filesystem::path TestdataEtl(const std::string& name) {
  std::filesystem::path p =
      std::filesystem::path(LABTRACE_TESTDATA_DIR) / "etl" / name;
  std::error_code ec;
  return std::filesystem::is_regular_file(p, ec) ? p : std::filesystem::path();
}

std::filesystem::path SourcePath(const std::string& relative) {
  return std::filesystem::path(LABTRACE_SOURCE_DIR) / relative;
}

std::string AgentBinary() { return LABTRACE_AGENT_BIN; }
std::string FakeWprBinary() { return LABTRACE_FAKE_WPR_BIN; }
std::string ControllerBinary() {
#ifdef LABTRACE_CONTROLLER_BIN
  return LABTRACE_CONTROLLER_BIN;
#else
  return "";
#endif
}

std::string PerfUnavailableReason() {
  if (subprocess::FindProgram("perf").empty()) return "perf is not installed";
  subprocess::Options o;
  o.argv = {"perf", "record", "-a", "-o", "/dev/null", "--", "true"};
  o.timeout = std::chrono::seconds(30);
  subprocess::Result r = subprocess::Run(o);
  if (!r.ok()) return "perf record -a cannot record here: " + r.output;
  return "";
}

void WriteTextFile(const std::filesystem::path& path,
                   const std::string& contents) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out << contents;
  ASSERT_TRUE(out.good()) << "cannot write " << PathToUtf8(path);
}

std::string ReadTextFile(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

AgentProcess::AgentProcess(Options options) : options_(std::move(options)) {}

AgentProcess::~AgentProcess() {
  if (process_.running()) Stop(std::chrono::seconds(20));
}

bool AgentProcess::Start(std::string* error) {
  std::error_code ec;
  std::filesystem::create_directories(options_.data_dir, ec);
  const std::filesystem::path port_file =
      options_.data_dir.parent_path() /
      (PathToUtf8(options_.data_dir.filename()) + ".port");
  std::filesystem::remove(port_file, ec);
  subprocess::Options o;
  o.argv = {AgentBinary(),      "--listen",    "127.0.0.1:0",
            "--rest-listen",    "127.0.0.1:0", "--port-file",
            PathToUtf8(port_file), "--data-dir", PathToUtf8(options_.data_dir),
            "--log-level",      "debug"};
  if (!options_.config_yaml.empty()) {
    const std::filesystem::path cfg =
        options_.data_dir.parent_path() /
        (PathToUtf8(options_.data_dir.filename()) + ".yaml");
    WriteTextFile(cfg, options_.config_yaml);
    o.argv.push_back("--config");
    o.argv.push_back(PathToUtf8(cfg));
  }
  o.argv.insert(o.argv.end(), options_.extra_args.begin(),
                options_.extra_args.end());
  o.extra_env = options_.env;
  o.output_cap = 1 << 20;
  process_ = subprocess::Process();  // Restartable after Stop() or Crash().
  if (!process_.Start(o, error)) return false;
  const bool up = WaitFor(
      [&] {
        std::ifstream in(port_file);
        return (in >> port_ >> rest_port_) && port_ > 0;
      },
      std::chrono::seconds(20));
  if (!up) {
    *error = "agent did not write its port file; output:\n" + process_.output();
    return false;
  }
  channel_ = grpc::CreateChannel(address(), grpc::InsecureChannelCredentials());
  stub_ = v1::TraceAgent::NewStub(channel_);
  return true;
}

subprocess::Result AgentProcess::Stop(std::chrono::milliseconds timeout) {
  process_.Interrupt();
  if (auto r = process_.Wait(timeout)) return *r;
  return process_.Kill(/*as_timeout=*/true);
}

void AgentProcess::Crash() {
#ifdef _WIN32
  process_.Kill();  // TerminateJobObject: no handler runs, like a crash.
#else
  ::kill(static_cast<pid_t>(-process_.pid()), SIGKILL);
  process_.Wait(std::chrono::seconds(10));
#endif
}

std::unique_ptr<grpc::ClientContext> Ctx(std::chrono::milliseconds deadline) {
  auto ctx = std::make_unique<grpc::ClientContext>();
  ctx->set_deadline(std::chrono::system_clock::now() + deadline);
  return ctx;
}

}  // namespace labtrace::testing
