// Authorizer: who may call what. Transport-neutral (the gRPC service uses it
// now; a REST gateway can pass the same header and peer).
//
// Tokens are configured as (name, role, sha256 of the token); the agent
// never stores or logs a token itself. Roles nest: admin > control > read.
//   read:    GetAgentInfo, GetTrace, ListTraces, ListArtifacts, GetArtifact,
//            FetchArtifact
//   control: StartTrace, StopTrace, CancelTrace
//   admin:   StopAllTraces, DeleteArtifact, RunCommand
// With no tokens configured, every caller is allowed (loopback default).
//
// AuditLog appends one line per mutating call, download and refused call:
// time, caller identity (token name, client certificate CN, or
// "anonymous"), peer, operation, target, result.

#ifndef LABTRACE_AGENT_SERVICE_AUTH_H_
#define LABTRACE_AGENT_SERVICE_AUTH_H_

#include <filesystem>
#include <functional>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "agent/config/agent_config.h"

namespace labtrace::agent {

const char* RoleName(Role role);

struct Caller {
  std::string identity;  // Token name, certificate CN, or "anonymous".
  Role role = Role::kAdmin;
};

class Authorizer {
 public:
  explicit Authorizer(std::vector<TokenSpec> tokens)
      : tokens_(std::move(tokens)) {}

  // `authorization`: the request's "authorization" header/metadata value
  // ("Bearer <token>"), empty if absent. `cert_identity`: the verified
  // client certificate's CN under mTLS, else empty. Unauthenticated for a
  // missing or unknown token, PermissionDenied if its role is too low.
  absl::StatusOr<Caller> Authorize(absl::string_view authorization,
                                   const std::string& cert_identity,
                                   absl::string_view operation,
                                   Role needed) const;

  bool enabled() const { return !tokens_.empty(); }

 private:
  const std::vector<TokenSpec> tokens_;
};

// Who a refused caller claimed to be, for the audit line: the certificate
// CN if any, and whether a (refused) bearer token was presented.
std::string RefusedIdentity(absl::string_view authorization,
                            const std::string& cert_identity);

// The audit log: one line per mutating call, per download and per refused
// call. The file is created readable by its owner only.
//
// Fail closed: a call that starts something (StartTrace, RunCommand,
// DeleteArtifact, fence changes) first writes a "result=STARTED" line with
// Begin() and does not happen if that fails (disk full, unwritable log).
// Calls that stop things (StopTrace, CancelTrace, StopAllTraces) are never
// refused for the audit's sake; their failure to record is logged.
class AuditLog {
 public:
  // Appends to `path` (created if missing); empty path: log only. `clock`
  // stamps the lines (a fake in tests).
  explicit AuditLog(std::filesystem::path path,
                    std::function<absl::Time()> clock = [] { return absl::Now(); })
      : path_(std::move(path)), clock_(std::move(clock)) {}
  // The first line of a call that must not happen unrecorded; UNAVAILABLE
  // with the reason if the line cannot be written.
  absl::Status Begin(const Caller& caller, const std::string& peer,
                     absl::string_view operation, absl::string_view target);
  // The outcome of a call (best effort: a failure is logged).
  void Record(const Caller& caller, const std::string& peer,
              absl::string_view operation, absl::string_view target,
              const absl::Status& result);

 private:
  absl::Status Write(const std::string& line);

  const std::filesystem::path path_;
  const std::function<absl::Time()> clock_;
  absl::Mutex mu_;  // One line at a time.
};

}  // namespace labtrace::agent

#endif  // LABTRACE_AGENT_SERVICE_AUTH_H_
