#include "controller/fleet/exit_codes.h"

namespace labtrace::controller {
namespace {

int Rank(int code) {
  switch (code) {
    case kExitInterrupted:
      return 5;
    case kExitDataProblem:
      return 4;
    case kExitFailed:
      return 3;
    case kExitUnreachable:
      return 2;
    case kExitOk:
      return 0;
    default:
      return 1;
  }
}

}  // namespace

int WorstExit(int a, int b) { return Rank(a) >= Rank(b) ? a : b; }

int ExitFor(const std::vector<HostOutcome>& outcomes) {
  int code = kExitOk;
  for (HostOutcome o : outcomes) {
    switch (o) {
      case HostOutcome::kFailed:
        code = WorstExit(code, kExitFailed);
        break;
      case HostOutcome::kUnreachable:
      case HostOutcome::kTimedOut:
        code = WorstExit(code, kExitUnreachable);
        break;
      case HostOutcome::kOk:
        break;
    }
  }
  return code;
}

}  // namespace labtrace::controller
