// WprBackend: records ETW through Windows Performance Recorder (wpr.exe).
//
// Portable code: it only builds argv and reads results through
// common/subprocess, so it runs on Linux against tests/tools/fake_wpr.
// Each session is a WPR instance named "labtrace_<name>" (the prefix marks
// instances this agent owns):
//   start:  wpr -start P1 [-start P2 ...] [-filemode -recordtempto DIR]
//               -instancename labtrace_<name>
//   stop:   wpr -stop DIR/<name>.etl [-skipPdbGen]
//               -instancename labtrace_<name>
// (-instancename last: wpr's documentation requires it.)
//   cancel: wpr -cancel -instancename labtrace_<name>
//   status: wpr -status -instancename labtrace_<name>
// Timeouts come from WprConfig. A stop that fails (times out, disk full, a
// merge error) is followed by -cancel, so no ETW session is left recording;
// the error reports both. After a crash, Salvage() stops an instance that is
// still recording into its work dir and keeps the file.

#ifndef LABTRACE_AGENT_BACKEND_WPR_BACKEND_H_
#define LABTRACE_AGENT_BACKEND_WPR_BACKEND_H_

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "agent/backend/trace_backend.h"
#include "common/subprocess.h"

namespace labtrace::agent {

// HRESULTs wpr reports that we map to specific status codes.
inline constexpr std::uint32_t kWprNoProfilesRunning = 0xC5583000;
inline constexpr std::uint32_t kWprAlreadyRunning = 0xC5583001;
inline constexpr std::uint32_t kWprInvalidProfileSchema = 0xC5580701;
inline constexpr std::uint32_t kWprTooManySessions = 0x800705AA;
// "Failed to enable the policy to profile system performance.": not elevated.
inline constexpr std::uint32_t kWprNotElevated = 0xC5585011;

// The HRESULT wpr reported: the "Error code: 0x..." line of its output, else
// a non-zero exit code read as a 32-bit HRESULT (what wpr.exe returns on
// Windows). nullopt when neither is present.
std::optional<std::uint32_t> ParseWprHresult(const subprocess::Result& result);

// Turns a failed wpr run into a status with a precise code and a message
// holding the operation, the instance, the exit code, the HRESULT and the
// tail of wpr's output. OK if the run succeeded.
absl::Status WprResultToStatus(absl::string_view operation,
                               const std::string& instance,
                               const subprocess::Result& result);

// "labtrace_<name>".
std::string WprInstanceName(const std::string& session_name);

// ETW session names (common/etw_sessions.h), or an error.
using EtwSessionLister =
    std::function<absl::StatusOr<std::vector<std::string>>()>;

// The WPR instance names an ETW session name may stand for, if it is one of
// labtrace's: "WPR_initiated_labtrace_a_b_WPR System Collector" gives
// labtrace_a_b (the collector name known), or, for a collector name we do
// not know, every "labtrace_..." prefix that ends before an underscore.
std::vector<std::string> LabtraceInstancesOfEtwSession(
    const std::string& etw_session_name);

struct WprBackendOptions {
  WprConfig config;
  // Where "embedded:" profile files live (<data_dir>/profiles).
  std::filesystem::path embedded_profiles_dir;
  // Lists running ETW sessions; empty means the OS's (etw::ListSessions).
  EtwSessionLister list_etw_sessions;
};

class WprBackend final : public TraceBackend {
 public:
  explicit WprBackend(WprBackendOptions options);

  absl::string_view name() const override { return "wpr"; }
  absl::string_view file_extension() const override { return ".etl"; }
  absl::Status CheckAvailable(std::string* detail) const override;
  absl::StatusOr<std::unique_ptr<BackendSession>> Start(
      const BackendStartRequest& request) override;
  absl::StatusOr<Salvaged> Salvage(const JournaledRecording& r) override;
  std::vector<std::string> CleanupUnjournaled() override;

  // The argv of each command, exposed for tests.
  std::vector<std::string> StartArgv(const BackendStartRequest& request) const;
  std::vector<std::string> StopArgv(const std::string& session_name,
                                    const std::filesystem::path& out) const;
  std::vector<std::string> CancelArgv(const std::string& session_name) const;
  std::vector<std::string> StatusArgv(const std::string& session_name) const;

  // Runs wpr with a timeout.
  subprocess::Result RunWpr(std::vector<std::string> argv,
                            absl::Duration timeout) const;

  const WprBackendOptions& options() const { return options_; }

 private:
  // Resolves "embedded:file!Profile" to "<embedded dir>/file!Profile".
  std::string ResolveProfile(const std::string& profile) const;

  WprBackendOptions options_;
};

}  // namespace labtrace::agent

#endif  // LABTRACE_AGENT_BACKEND_WPR_BACKEND_H_
