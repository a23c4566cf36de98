#include "agent/service/auth.h"

#include <fstream>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "common/file_ops.h"
#include "common/file_util.h"
#include "common/names.h"
#include "common/time_util.h"
#include "spdlog/spdlog.h"

namespace labtrace::agent {
namespace {

// Compares without an early exit, so timing does not reveal a prefix.
bool ConstantTimeEquals(absl::string_view a, absl::string_view b) {
  if (a.size() != b.size()) return false;
  unsigned char diff = 0;
  for (std::size_t i = 0; i < a.size(); ++i)
    diff |= static_cast<unsigned char>(a[i] ^ b[i]);
  return diff == 0;
}

}  // namespace

const char* RoleName(Role role) {
  switch (role) {
    case Role::kRead:
      return "read";
    case Role::kControl:
      return "control";
    case Role::kAdmin:
      return "admin";
  }
  return "unknown";
}

absl::StatusOr<Caller> Authorizer::Authorize(absl::string_view authorization,
                                             const std::string& cert_identity,
                                             absl::string_view operation,
                                             Role needed) const {
  Caller caller;
  caller.identity = cert_identity.empty()
                        ? "anonymous"
                        : absl::StrCat("cert:", cert_identity);
  if (tokens_.empty()) return caller;  // Authentication is off.
  absl::string_view v = absl::StripAsciiWhitespace(authorization);
  if (v.empty()) {
    return absl::UnauthenticatedError(absl::StrCat(
        operation,
        " needs a bearer token (\"authorization: Bearer <token>\")"));
  }
  if (!absl::ConsumePrefix(&v, "Bearer ") &&
      !absl::ConsumePrefix(&v, "bearer ")) {
    return absl::UnauthenticatedError(
        "the authorization header is not \"Bearer <token>\"");
  }
  const std::string hash = Sha256Hex(absl::StripAsciiWhitespace(v));
  const TokenSpec* match = nullptr;
  for (const TokenSpec& t : tokens_) {
    if (ConstantTimeEquals(hash, t.sha256)) match = &t;
  }
  if (match == nullptr) {
    // Never echo the token.
    return absl::UnauthenticatedError("unknown or revoked token");
  }
  caller.identity =
      cert_identity.empty()
          ? match->name
          : absl::StrCat(match->name, " (cert:", cert_identity, ")");
  caller.role = match->role;
  if (static_cast<int>(match->role) < static_cast<int>(needed)) {
    return absl::PermissionDeniedError(absl::StrCat(
        "token \"", match->name, "\" has role ", RoleName(match->role), "; ",
        operation, " needs ", RoleName(needed)));
  }
  return caller;
}

std::string RefusedIdentity(absl::string_view authorization,
                            const std::string& cert_identity) {
  std::string id = cert_identity.empty() ? "anonymous"
                                         : absl::StrCat("cert:", cert_identity);
  if (!absl::StripAsciiWhitespace(authorization).empty()) {
    absl::StrAppend(&id, " (refused bearer token)");
  }
  return id;
}

namespace {

std::string AuditLine(absl::Time now, const Caller& caller,
                      const std::string& peer, absl::string_view operation,
                      absl::string_view target, absl::string_view result) {
  return absl::StrCat(Rfc3339(now),
                      " caller=", QuoteForMessage(caller.identity),
                      " peer=", QuoteForMessage(peer), " op=", operation,
                      " target=", QuoteForMessage(target), " result=", result);
}

}  // namespace

absl::Status AuditLog::Write(const std::string& line) {
  if (path_.empty()) return absl::OkStatus();
  absl::MutexLock lock(&mu_);
  std::string error;
  if (!file_ops::AppendPrivate(path_, line + "\n", &error)) {
    return absl::UnavailableError(absl::StrCat(
        "the audit log cannot be written (", error,
        "); refusing calls that must be audited"));
  }
  return absl::OkStatus();
}

absl::Status AuditLog::Begin(const Caller& caller, const std::string& peer,
                             absl::string_view operation,
                             absl::string_view target) {
  absl::Status s =
      Write(AuditLine(clock_(), caller, peer, operation, target, "STARTED"));
  if (!s.ok()) spdlog::error("audit: {}", s.ToString());
  return s;
}

void AuditLog::Record(const Caller& caller, const std::string& peer,
                      absl::string_view operation, absl::string_view target,
                      const absl::Status& result) {
  const std::string line =
      AuditLine(clock_(), caller, peer, operation, target,
                absl::StatusCodeToString(result.code()));
  spdlog::info("audit: {}", line);
  if (absl::Status s = Write(line); !s.ok()) {
    spdlog::error("audit: {}", s.ToString());
  }
}

}  // namespace labtrace::agent
