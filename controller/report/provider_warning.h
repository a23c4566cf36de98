// The "one provider fills the file" warning: when a single provider holds
// most of a large ETL file, the profile records far more than the test
// needs ("Why is this ETL 2.5 GB?"). A pure function of the TraceSummary
// the agent computed, so the controller can apply it after collect, run
// and exec, and tests can check the rule alone.
//
//   if (auto w = ProviderWarning(artifact.summary())) warnings.push_back(*w);

#ifndef LABTRACE_CONTROLLER_REPORT_PROVIDER_WARNING_H_
#define LABTRACE_CONTROLLER_REPORT_PROVIDER_WARNING_H_

#include <cstdint>
#include <optional>
#include <string>

#include "labtrace/v1/agent.pb.h"

namespace labtrace::controller {

// The rule's thresholds: the file is at least this large...
inline constexpr std::uint64_t kProviderWarningMinFileBytes = 1ull << 30;
// ...and one provider holds at least this share of its record bytes.
inline constexpr double kProviderWarningMinShare = 0.5;

// "Microsoft-Windows-Kernel-File: 81% of 2.4 GiB; narrow the profile", or
// nullopt. The share is of the file's record bytes (TraceSummary.
// record_bytes, all providers), the size is the file's. Providers are
// named by name, else GUID, else key. Summaries without provider figures
// (perf files, agents older than the field) never warn.
std::optional<std::string> ProviderWarning(const v1::TraceSummary& summary);

}  // namespace labtrace::controller

#endif  // LABTRACE_CONTROLLER_REPORT_PROVIDER_WARNING_H_
