#include "common/trace_summary.h"

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "common/etl/etl_providers.h"
#include "common/etl/etl_summary.h"
#include "common/file_util.h"
#include "common/perf_data.h"
#include "common/proto_time.h"

namespace labtrace {
absl::StatusOr<std::optional<v1::TraceSummary>> SummarizeTraceFile(
    const std::filesystem::path& path) {
  return SummarizeTraceFile(path, nullptr);
}

absl::StatusOr<std::optional<v1::TraceSummary>> SummarizeTraceFile(
    const std::filesystem::path& path,
    std::vector<v1::ProviderStat>* all_providers) {
  if (all_providers != nullptr) all_providers->clear();
  const std::string name = PathToUtf8(path.filename());
  const bool etl = absl::EndsWithIgnoreCase(name, ".etl");
  const bool perf = absl::EndsWith(name, ".perf.data") || name == "perf.data";
  if (!etl && !perf) return std::nullopt;
  etl::FileByteSource src(path);
  if (!src.ok())
    return absl::NotFoundError(absl::StrCat("cannot open ", PathToUtf8(path)));
  v1::TraceSummary s;
  if (etl) {
    etl::ProviderTally tally;
    const etl::EtlSummary e = etl::SummarizeEtl(src, &tally);
    s.set_format("etl");
    s.set_header_valid(e.header_valid);
    for (const std::string& p : e.problems) s.add_problems(p);
    s.set_events_lost(e.events_lost);
    s.set_buffers_lost(e.buffers_lost);
    s.set_record_count(e.record_count);
    s.set_record_count_complete(e.record_count_complete);
    s.set_file_size(e.file_size);
    s.set_logger_name(e.logger_name);
    const std::int64_t start =
        etl::EtlSummary::FiletimeToUnixNanos(e.start_time_filetime);
    const std::int64_t end =
        etl::EtlSummary::FiletimeToUnixNanos(e.end_time_filetime);
    if (start > 0)
      *s.mutable_start_time() = ToProtoTimestamp(absl::FromUnixNanos(start));
    if (end > 0)
      *s.mutable_end_time() = ToProtoTimestamp(absl::FromUnixNanos(end));
    if (start > 0 && end >= start) {
      s.mutable_duration()->set_seconds((end - start) / 1000000000);
      s.mutable_duration()->set_nanos(
          static_cast<std::int32_t>((end - start) % 1000000000));
    }
    s.set_buffer_size(e.buffer_size);
    s.set_buffers_written(e.buffers_written);
    s.set_buffers_found(e.buffers_found);
    s.set_pointer_size(e.pointer_size);
    s.set_processor_count(e.processor_count);
    if (e.header_valid) s.set_os_version(e.OsVersion());
    s.set_log_file_mode(e.log_file_mode);
    for (const std::string& f : e.log_file_mode_flags)
      s.add_log_file_mode_flags(f);
    s.set_compressed_buffers(e.compressed_buffers);
    const std::vector<etl::ProviderStat> providers = tally.Results();
    s.set_provider_count(providers.size());
    s.set_record_bytes(tally.bytes());
    for (std::size_t i = 0; i < providers.size(); ++i) {
      const etl::ProviderStat& p = providers[i];
      v1::ProviderStat x;
      x.set_key(p.key);
      x.set_guid(p.guid);
      x.set_name(p.name);
      x.set_source(p.source);
      x.set_events(p.events);
      x.set_bytes(p.bytes);
      if (all_providers != nullptr) all_providers->push_back(x);
      if (i < static_cast<std::size_t>(kTopProviders)) {
        *s.add_top_providers() = std::move(x);
      } else if (all_providers == nullptr) {
        break;
      }
    }
  } else {
    const perf::PerfDataSummary p = perf::SummarizePerfData(src);
    s.set_format("perf");
    s.set_header_valid(p.header_valid);
    for (const std::string& x : p.problems) s.add_problems(x);
    s.set_events_lost(p.lost_events);
    s.set_record_count(p.record_count);
    s.set_record_count_complete(p.record_count_complete);
    s.set_file_size(p.file_size);
    s.set_data_size(p.data_size);
    s.set_sample_count(p.sample_count);
  }
  return s;
}

std::vector<std::string> SummaryWarnings(const v1::TraceSummary& s) {
  std::vector<std::string> out;
  for (const std::string& p : s.problems()) {
    std::string w = p;
    if (absl::StrContains(p, "events lost") && s.format() == "etl") {
      absl::StrAppend(&w, "; raise the buffer count or size in the profile");
    }
    out.push_back(std::move(w));
  }
  return out;
}

}  // namespace labtrace
