// libFuzzer target: the ETL and perf.data summaries on arbitrary bytes.
// Built and run by tests/fuzz/run_fuzz.sh under ASan + UBSan.

#include <cstddef>
#include <cstdint>

#include "common/etl/etl_summary.h"
#include "common/perf_data.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data,
                                      std::size_t size) {
  labtrace::etl::MemoryByteSource src(data, size);
  labtrace::etl::EtlSummary s = labtrace::etl::SummarizeEtl(src);
  (void)s;
  labtrace::perf::PerfDataSummary p = labtrace::perf::SummarizePerfData(src);
  (void)p;
  // The decompressor alone, on the raw bytes.
  std::vector<unsigned char> out;
  labtrace::etl::DecompressXpressLz77(data, size, 1 << 20, &out);
  return 0;
}
