// Portable parts of the subprocess layer (common/subprocess.h) shared by the
// POSIX and Windows implementations: Result::Describe() and OutcomeName().

#include <string>

#include "common/subprocess.h"

namespace labtrace::subprocess {

const char* OutcomeName(Outcome outcome) {
  switch (outcome) {
    case Outcome::kExited:
      return "exited";
    case Outcome::kSignaled:
      return "signaled";
    case Outcome::kTimedOut:
      return "timed_out";
    case Outcome::kSpawnFailed:
      return "spawn_failed";
  }
  return "unknown";
}

std::string Result::Describe() const {
  switch (outcome) {
    case Outcome::kExited:
      return "exited with code " + std::to_string(exit_code);
    case Outcome::kSignaled:
      return "killed by signal " + std::to_string(term_signal);
    case Outcome::kTimedOut:
      return "timed out after " + std::to_string(elapsed.count()) + " ms";
    case Outcome::kSpawnFailed:
      return "failed to start: " + error;
  }
  return "unknown outcome";
}

}  // namespace labtrace::subprocess
