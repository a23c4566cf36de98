// Shared test helpers: temp dirs, waiting on conditions, test data paths,
// and AgentProcess, which runs the real labtrace-agent binary on a loopback
// port for integration tests.

#ifndef LABTRACE_TESTS_TESTING_TEST_UTIL_H_
#define LABTRACE_TESTS_TESTING_TEST_UTIL_H_

#include <chrono>
#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "common/subprocess.h"
#include "grpcpp/grpcpp.h"
#include "labtrace/v1/agent.grpc.pb.h"

namespace labtrace::testing {

// A fresh directory under $TMPDIR, removed with everything in it.
class TempDir {
 public:
  TempDir();
  ~TempDir();
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const std::filesystem::path& path() const { return path_; }

 private:
  std::filesystem::path path_;
};

// Sets or removes an environment variable of this process (children
// started afterwards inherit it).
void SetEnv(const std::string& name, const std::string& value);
void UnsetEnv(const std::string& name);

// Polls `condition` every few milliseconds until it holds or `timeout`
// passes. Returns the last value of the condition.
bool WaitFor(const std::function<bool()>& condition,
             std::chrono::milliseconds timeout = std::chrono::seconds(10));

// ../shared/testdata/etl/<name>, or an empty path if the test data is not
// beside this checkout.
std::filesystem::path TestdataEtl(const std::string& name);

// A file of this checkout, e.g. SourcePath("deploy/agent.example.yaml").
std::filesystem::path SourcePath(const std::string& relative);

// Built binaries (paths baked in by CMake).
std::string AgentBinary();
std::string FakeWprBinary();
std::string ControllerBinary();

// Why `perf record -a` cannot record on this machine, or "" if it can.
std::string PerfUnavailableReason();

// Writes `contents` to `path` (test setup; aborts the test on failure).
void WriteTextFile(const std::filesystem::path& path,
                   const std::string& contents);
std::string ReadTextFile(const std::filesystem::path& path);

// Runs labtrace-agent on 127.0.0.1 with an ephemeral port and a data dir of
// its own. Stops it (SIGINT, then kill) when destroyed.
class AgentProcess {
 public:
  struct Options {
    std::filesystem::path data_dir;  // Required.
    std::string config_yaml;  // Written to data_dir/../agent.yaml if set.
    std::vector<std::string> extra_args;
    std::vector<std::string> env;  // Extra KEY=VALUE entries.
  };
  explicit AgentProcess(Options options);
  ~AgentProcess();

  // Starts the agent and waits until it listens. False (with the agent's
  // output in *error) if it did not come up within the timeout.
  bool Start(std::string* error);
  // Stops with SIGINT (graceful: active traces are stopped and kept) and
  // returns the agent's result.
  subprocess::Result Stop(
      std::chrono::milliseconds timeout = std::chrono::seconds(30));
  // Kills the agent hard (SIGKILL to its process group), as a crash would.
  void Crash();

  int port() const { return port_; }
  int rest_port() const { return rest_port_; }  // 0 if REST is off.
  std::string address() const { return "127.0.0.1:" + std::to_string(port_); }
  std::int64_t pid() const { return process_.pid(); }
  std::string output() const { return process_.output(); }
  v1::TraceAgent::Stub& stub() { return *stub_; }
  std::shared_ptr<grpc::Channel> channel() { return channel_; }

 private:
  Options options_;
  subprocess::Process process_;
  int port_ = 0;
  int rest_port_ = 0;
  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<v1::TraceAgent::Stub> stub_;
};

// A ClientContext with a deadline, for test RPCs.
std::unique_ptr<grpc::ClientContext> Ctx(
    std::chrono::milliseconds deadline = std::chrono::seconds(30));

}  // namespace labtrace::testing

#endif  // LABTRACE_TESTS_TESTING_TEST_UTIL_H_
