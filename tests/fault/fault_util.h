// Helpers of the fault-injection suite (tests/fault): an agent wired to the
// fake wpr and the real perf backend, process scans for orphans, artifact
// verification, a raw HTTP client, and the figures each test prints.

#ifndef LABTRACE_TESTS_FAULT_FAULT_UTIL_H_
#define LABTRACE_TESTS_FAULT_FAULT_UTIL_H_

#include <cstdint>
#include <filesystem>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/time/time.h"
#include "labtrace/v1/agent.grpc.pb.h"
#include "tests/testing/test_util.h"

namespace labtrace::fault {

// LABTRACE_FAULT_SCALE=full runs the counts of the issue (20 kills, 100
// clients, ...); the default is the bounded CI version.
int Scale(int ci, int full);

// Prints "[ FIGURE   ] <test>: <text>" (and records it in the XML report).
void Figure(const std::string& text);

// Milliseconds since `start`, for figures.
double MsSince(absl::Time start);

// The argv of every process on the machine (POSIX: /proc).
std::vector<std::pair<std::int64_t, std::vector<std::string>>> Processes();
// `perf record` processes writing below `dir`.
int PerfRecordingUnder(const std::filesystem::path& dir);
// Processes whose argv contains `marker` as one argument.
int ProcessesWithArg(const std::string& marker);
// Resident memory of a process in KiB (0 if unknown).
std::int64_t RssKib(std::int64_t pid);

// An agent on loopback with the fake wpr (its state in `dir`/wpr_state),
// the perf backend, RunCommand for /bin/sleep and /bin/sh, and `limits`
// lines (YAML, two-space indented) of the test's own.
struct FaultAgentOptions {
  std::filesystem::path dir;         // Test dir (fake wpr state, config).
  std::filesystem::path data_dir;    // Default: dir/data.
  std::filesystem::path etl_source;  // What fake wpr "records".
  std::string limits;                // Extra lines under `limits:`.
  std::vector<std::string> extra_args;
};
std::unique_ptr<testing::AgentProcess> MakeFaultAgent(
    const FaultAgentOptions& options);
std::filesystem::path FakeWprState(const std::filesystem::path& dir);
// Running fake wpr instances (ETW sessions, on Windows).
int FakeWprInstances(const std::filesystem::path& dir);
// Sets fake wpr knobs (control.env), e.g. {"FAKE_WPR_STOP_DELAY_MS=3000"}.
void SetFakeWprKnobs(const std::filesystem::path& dir,
                     const std::vector<std::string>& lines);

// A stub on a channel (connection) of its own.
std::unique_ptr<v1::TraceAgent::Stub> NewStub(const std::string& address);

// Every listed artifact fetched and checked against its sha256.
struct Verified {
  int listed = 0;
  int matching = 0;
  std::vector<std::string> problems;
};
Verified VerifyArtifacts(v1::TraceAgent::Stub& stub);

// A raw HTTP/1.1 request on 127.0.0.1:port ("Connection: close"): status
// (0: no answer within `timeout`) and body.
struct HttpAnswer {
  int status = 0;
  std::string body;
};
HttpAnswer HttpRequest(int port, const std::string& method,
                       const std::string& path, absl::Duration timeout,
                       const std::string& body = "");

// A TCP connection to 127.0.0.1:port (blocking fd, or -1).
int Connect(int port);
// Milliseconds until the peer closes `fd` (reading and dropping what it
// sends), or -1 if it did not within `timeout`.
double MsUntilClosed(int fd, absl::Duration timeout);

// A random file of `bytes` bytes.
void WriteRandomFile(const std::filesystem::path& path, std::uint64_t bytes);

}  // namespace labtrace::fault

#endif  // LABTRACE_TESTS_FAULT_FAULT_UTIL_H_
