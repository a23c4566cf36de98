#include "agent/service/agent_pools.h"

#include "absl/strings/str_cat.h"

namespace labtrace::agent {

absl::Status BusyStatus(const WorkPool& pool, absl::string_view what) {
  return absl::UnavailableError(absl::StrCat(
      kBusyPrefix, what, ": all ", pool.max_threads(), " ", pool.name(),
      " threads are in use and ", pool.queued(),
      " calls wait; retry in a moment (nothing was done)"));
}

}  // namespace labtrace::agent
