// Builds a v1::TraceSummary for a trace file by its name: ".etl" files get
// the ETL summary (common/etl), ".perf.data" files the perf.data check.
// Used by the agent at stop and by `labtrace inspect`.

#ifndef LABTRACE_COMMON_TRACE_SUMMARY_H_
#define LABTRACE_COMMON_TRACE_SUMMARY_H_

#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "labtrace/v1/agent.pb.h"

namespace labtrace {

// nullopt for files of other kinds (logs); an error if the file cannot be
// opened.
absl::StatusOr<std::optional<v1::TraceSummary>> SummarizeTraceFile(
    const std::filesystem::path& path);

// The same, and (ETL) every provider of the file in *all_providers, by
// bytes descending (the summary keeps only the top 10). One pass.
absl::StatusOr<std::optional<v1::TraceSummary>> SummarizeTraceFile(
    const std::filesystem::path& path,
    std::vector<v1::ProviderStat>* all_providers);

// How many providers TraceSummary.top_providers keeps.
inline constexpr int kTopProviders = 10;

// "unit_tests on vm3: 41 events lost; raise the buffer count or size in the
// profile": one line per problem, for warnings.
std::vector<std::string> SummaryWarnings(const v1::TraceSummary& summary);

}  // namespace labtrace

#endif  // LABTRACE_COMMON_TRACE_SUMMARY_H_
