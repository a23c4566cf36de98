// libFuzzer target: the ETL and perf.data summaries on arbitrary bytes.
// Built and run by tests/fuzz/run_fuzz.sh under ASan + UBSan.

#include <cstddef>
#include <cstdint>

#include "common/etl/etl_providers.h"
#include "common/etl/etl_summary.h"
#include "common/perf_data.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data,
                                      std::size_t size) {
  labtrace::etl::MemoryByteSource src(data, size);
  // With the per-provider tally (a small cap, so "other" is reached too).
  labtrace::etl::ProviderTally tally(16);
  labtrace::etl::EtlSummary s = labtrace::etl::SummarizeEtl(src, &tally);
  std::uint64_t events = 0;
  for (const labtrace::etl::ProviderStat& p : tally.Results())
    events += p.events;
  if (events != s.record_count) __builtin_trap();  // Every record tallied.
  labtrace::perf::PerfDataSummary p = labtrace::perf::SummarizePerfData(src);
  (void)p;
  // The decompressor alone, on the raw bytes.
  std::vector<unsigned char> out;
  labtrace::etl::DecompressXpressLz77(data, size, 1 << 20, &out);
  return 0;
}
