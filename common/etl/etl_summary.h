// EtlSummary: what an Event Trace Log (.etl) file holds and whether it is
// sound, read directly from the bytes (no Windows API), so the agent and the
// controller can check ETW traces on any OS.
//
// Parsed: every buffer's WMI_BUFFER_HEADER (walked by BufferSize from offset
// 0 to the end), the first record's SYSTEM_TRACE_HEADER and the
// TRACE_LOGFILE_HEADER (32- and 64-bit layouts) with the logger and file
// names, and every record of every buffer (to count them, and to hand them
// to an optional RecordSink), including buffers compressed with MS-XCA plain
// LZ77. Layout notes and known answers:
// ../shared/testdata/etl/README.md.
//
// The input is untrusted: every read is bounds-checked, loops are bounded by
// the input size, and memory is bounded by one buffer (at most 64 MiB) no
// matter how large the file is. Problems are reported, never thrown.
//
// Standard library only (the fuzz target builds it with clang alone).
//
//   std::ifstream in(path, std::ios::binary);
//   EtlSummary s = SummarizeEtl(FileByteSource(path));
//   if (!s.problems.empty()) ...

#ifndef LABTRACE_COMMON_ETL_ETL_SUMMARY_H_
#define LABTRACE_COMMON_ETL_ETL_SUMMARY_H_

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

namespace labtrace::etl {

// Random-access bytes. Implementations: FileByteSource, MemoryByteSource.
class ByteSource {
 public:
  virtual ~ByteSource() = default;
  virtual std::uint64_t size() const = 0;
  // Reads up to n bytes at offset; returns how many were read.
  virtual std::size_t ReadAt(std::uint64_t offset, void* out,
                             std::size_t n) = 0;
};

class FileByteSource final : public ByteSource {
 public:
  explicit FileByteSource(const std::filesystem::path& path);
  bool ok() const { return ok_; }
  std::uint64_t size() const override { return size_; }
  std::size_t ReadAt(std::uint64_t offset, void* out, std::size_t n) override;

 private:
  std::ifstream in_;
  std::uint64_t size_ = 0;
  bool ok_ = false;
};

class MemoryByteSource final : public ByteSource {
 public:
  MemoryByteSource(const void* data, std::size_t size)
      : data_(static_cast<const unsigned char*>(data)), size_(size) {}
  std::uint64_t size() const override { return size_; }
  std::size_t ReadAt(std::uint64_t offset, void* out, std::size_t n) override;

 private:
  const unsigned char* data_;
  std::size_t size_;
};

struct EtlSummary {
  bool header_valid = false;  // The logfile header was found and parsed.
  std::uint64_t file_size = 0;
  std::uint32_t header_marker =
      0;  // 0xC0010002 (32-bit) / 0xC0020002 (64-bit).
  std::uint32_t pointer_size = 0;
  std::string logger_name;
  std::string log_file_name;
  std::uint64_t start_time_filetime = 0;  // 100 ns since 1601-01-01 UTC.
  std::uint64_t end_time_filetime = 0;    // 0 if the file was not closed.
  std::uint64_t boot_time_filetime = 0;
  std::uint64_t perf_freq = 0;
  std::uint32_t clock_type =
      0;  // ReservedFlags: 1 QPC, 2 system time, 3 CPU cycles.
  std::uint32_t buffer_size = 0;        // From the logfile header.
  std::uint32_t first_buffer_size = 0;  // On-disk size of buffer 0.
  std::uint32_t buffers_written = 0;
  std::uint32_t buffers_found = 0;  // Walked from offset 0 to the end.
  std::uint32_t events_lost = 0;
  std::uint32_t buffers_lost = 0;
  std::uint32_t processor_count = 0;
  std::uint32_t cpu_speed_mhz = 0;
  std::uint32_t max_file_size = 0;  // MB, or KB with USE_KBYTES_FOR_SIZE.
  std::uint8_t version[4] = {0, 0, 0, 0};  // Major, Minor, Sub, SubMinor.
  std::uint32_t os_build = 0;              // ProviderVersion.
  std::uint32_t log_file_mode = 0;
  std::vector<std::string>
      log_file_mode_flags;  // "SEQUENTIAL", "CIRCULAR", ...
  std::uint64_t record_count = 0;
  bool record_count_complete =
      true;  // False if some buffer could not be walked.
  std::uint32_t compressed_buffers = 0;
  std::uint32_t buffers_flagged_events_lost = 0;  // BufferFlag 0x2.
  std::int64_t min_sequence = -1;  // Over data buffers; -1 if none.
  std::int64_t max_sequence = -1;
  // Human-readable problems: truncated file, not closed, events or buffers
  // lost, bad header, unreadable records. Empty means sound.
  std::vector<std::string> problems;

  // "10.0 build 22623".
  std::string OsVersion() const;
  // Unix nanoseconds of a FILETIME, 0 for 0.
  static std::int64_t FiletimeToUnixNanos(std::uint64_t filetime);
};

// Sees every record SummarizeEtl walks, in file order (decompressed
// records included), e.g. ProviderTally (etl_providers.h) for per-provider
// events and bytes in the same pass. Called on SummarizeEtl's thread; the
// bytes are valid only during the call.
class RecordSink {
 public:
  virtual ~RecordSink() = default;
  // `record` holds `size` bytes (the size the record's header declares,
  // >= 4, within the buffer's data; the header type is record[2]).
  // `stored` is the space it takes in the buffer: size rounded up to 8.
  virtual void OnRecord(const unsigned char* record, std::size_t size,
                        std::size_t stored) = 0;
};

// `sink` (optional) also receives every record counted in record_count.
EtlSummary SummarizeEtl(ByteSource& source, RecordSink* sink = nullptr);

// MS-XCA plain LZ77 ([MS-XCA] 2.3/2.4). Appends at most `max_output` bytes
// to *out; false on malformed input (what was decoded so far is kept).
bool DecompressXpressLz77(const unsigned char* in, std::size_t in_size,
                          std::size_t max_output,
                          std::vector<unsigned char>* out);

// Names of the EVENT_TRACE_* logging mode bits set in `mode`.
std::vector<std::string> LogFileModeNames(std::uint32_t mode);

}  // namespace labtrace::etl

#endif  // LABTRACE_COMMON_ETL_ETL_SUMMARY_H_
