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
// AuditLog appends one line per mutating call: time, caller identity (token
// name, client certificate CN, or "anonymous"), peer, operation, target,
// result.

#ifndef LABTRACE_AGENT_SERVICE_AUTH_H_
#define LABTRACE_AGENT_SERVICE_AUTH_H_

#include <filesystem>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
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

class AuditLog {
 public:
  // Appends to `path` (created if missing); empty path: log only.
  explicit AuditLog(std::filesystem::path path) : path_(std::move(path)) {}
  void Record(const Caller& caller, const std::string& peer,
              absl::string_view operation, absl::string_view target,
              const absl::Status& result);

 private:
  const std::filesystem::path path_;
  absl::Mutex mu_;  // One line at a time.
};

}  // namespace labtrace::agent

#endif  // LABTRACE_AGENT_SERVICE_AUTH_H_
