// PerfDataSummary: a check of a perf.data file (perf record's output):
// header magic and sizes, the data section's bounds, and a walk of its
// records counting samples and events perf reported lost
// (PERF_RECORD_LOST, PERF_RECORD_LOST_SAMPLES). Streams; never trusts sizes.
// Standard library only, like etl/etl_summary.h (whose ByteSource it uses).

#ifndef LABTRACE_COMMON_PERF_DATA_H_
#define LABTRACE_COMMON_PERF_DATA_H_

#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

#include "common/etl/etl_summary.h"

namespace labtrace::perf {

struct PerfDataSummary {
  bool header_valid = false;
  std::uint64_t file_size = 0;
  std::uint64_t attr_count = 0;
  std::uint64_t data_offset = 0;
  std::uint64_t data_size = 0;
  std::uint64_t record_count = 0;
  std::uint64_t sample_count = 0;
  std::uint64_t lost_events = 0;  // Sum of PERF_RECORD_LOST and _LOST_SAMPLES.
  bool record_count_complete = true;
  std::vector<std::string> problems;
};

PerfDataSummary SummarizePerfData(etl::ByteSource& source);

// Makes a perf.data file whose writer was killed readable again: perf writes
// its header at the start with an empty data section and fills it in only
// when it finishes. This walks the records after the header's data offset,
// stops at the first incomplete one, writes that length into the header,
// clears the feature bits (the feature sections were never written) and cuts
// the incomplete tail. True and *note ("... from N records") on success;
// false and *error if the file is not a perf.data file or has no complete
// record. A file that is already whole is left as it is (*note says so).
bool RepairPerfData(const std::filesystem::path& path, std::string* note,
                    std::string* error);

}  // namespace labtrace::perf

#endif  // LABTRACE_COMMON_PERF_DATA_H_
