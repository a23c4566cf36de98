#include "common/perf_data.h"

#include <algorithm>
#include <cstring>
#include <fstream>

namespace labtrace::perf {
namespace {

constexpr std::uint64_t kHeaderSize = 104;  // perf_file_header
constexpr std::uint32_t kRecordLost = 2;
constexpr std::uint32_t kRecordSample = 9;
constexpr std::uint32_t kRecordLostSamples = 13;

std::uint64_t U64(const unsigned char* p) {
  std::uint64_t v = 0;
  for (int i = 7; i >= 0; --i) v = (v << 8) | p[i];
  return v;
}

}  // namespace

PerfDataSummary SummarizePerfData(etl::ByteSource& source) {
  PerfDataSummary s;
  s.file_size = source.size();
  unsigned char h[kHeaderSize];
  if (s.file_size < kHeaderSize ||
      source.ReadAt(0, h, kHeaderSize) != kHeaderSize) {
    s.problems.push_back("truncated: " + std::to_string(s.file_size) +
                         " bytes, less than a perf.data header");
    return s;
  }
  if (std::memcmp(h, "PERFILE2", 8) != 0) {
    s.problems.push_back(
        "bad header: no PERFILE2 magic (not a perf.data file, or big-endian)");
    return s;
  }
  const std::uint64_t header_size = U64(h + 8);
  const std::uint64_t attr_size = U64(h + 16);
  const std::uint64_t attrs_size = U64(h + 32);
  s.data_offset = U64(h + 40);
  s.data_size = U64(h + 48);
  if (header_size != kHeaderSize) {
    s.problems.push_back("bad header: header size " +
                         std::to_string(header_size));
    return s;
  }
  s.header_valid = true;
  s.attr_count = attr_size > 0 ? attrs_size / attr_size : 0;
  if (s.data_size == 0) {
    s.problems.push_back(
        "empty data section: perf did not finish the file (killed?)");
    return s;
  }
  if (s.data_offset > s.file_size ||
      s.data_size > s.file_size - s.data_offset) {
    s.problems.push_back(
        "truncated: the data section ends past the end of the file");
    return s;
  }
  // Walk records: {u32 type, u16 misc, u16 size} then the body.
  std::vector<unsigned char> buf(1 << 20);
  std::uint64_t pos = s.data_offset;
  const std::uint64_t end = s.data_offset + s.data_size;
  std::size_t have = 0, at = 0;  // Bytes in buf and where we are in it.
  while (pos + 8 <= end) {
    if (at + 8 > have) {  // Refill so that at least the next header is in buf.
      const std::size_t want = static_cast<std::size_t>(
          std::min<std::uint64_t>(buf.size(), end - pos));
      have = source.ReadAt(pos, buf.data(), want);
      at = 0;
      if (have < 8) break;
    }
    const unsigned char* r = buf.data() + at;
    const std::uint32_t type = static_cast<std::uint32_t>(U64(r) & 0xffffffffu);
    const std::uint16_t size = static_cast<std::uint16_t>(r[6] | (r[7] << 8));
    if (size < 8 || pos + size > end) {
      s.record_count_complete = false;
      s.problems.push_back("unreadable record at offset " +
                           std::to_string(pos));
      break;
    }
    if (at + size > have) {  // Body not in buf: refill from this record.
      have = source.ReadAt(pos, buf.data(),
                           static_cast<std::size_t>(
                               std::min<std::uint64_t>(buf.size(), end - pos)));
      at = 0;
      if (have < size) break;
      r = buf.data();
    }
    ++s.record_count;
    if (type == kRecordSample) ++s.sample_count;
    if (type == kRecordLost && size >= 8 + 16) s.lost_events += U64(r + 8 + 8);
    if (type == kRecordLostSamples && size >= 8 + 8)
      s.lost_events += U64(r + 8);
    at += size;
    pos += size;
  }
  if (s.lost_events > 0) {
    s.problems.push_back(
        std::to_string(s.lost_events) +
        " events lost (perf could not keep up; use a larger -m buffer or a "
        "lower frequency)");
  }
  return s;
}

bool RepairPerfData(const std::filesystem::path& path, std::string* note,
                    std::string* error) {
  std::fstream f(path, std::ios::in | std::ios::out | std::ios::binary);
  if (!f) {
    *error = "cannot open the file";
    return false;
  }
  f.seekg(0, std::ios::end);
  const std::uint64_t file_size = static_cast<std::uint64_t>(f.tellg());
  unsigned char h[kHeaderSize];
  f.seekg(0);
  if (file_size < kHeaderSize ||
      !f.read(reinterpret_cast<char*>(h), kHeaderSize)) {
    *error = "shorter than a perf.data header";
    return false;
  }
  if (std::memcmp(h, "PERFILE2", 8) != 0 || U64(h + 8) != kHeaderSize) {
    *error = "not a perf.data file (no PERFILE2 header)";
    return false;
  }
  const std::uint64_t data_offset = U64(h + 40);
  const std::uint64_t data_size = U64(h + 48);
  if (data_offset < kHeaderSize || data_offset > file_size) {
    *error = "the header's data offset is outside the file";
    return false;
  }
  if (data_size != 0 && data_size <= file_size - data_offset) {
    *note = "perf had finished the file";
    return true;
  }
  // Walk the records from the data offset to the end of the file.
  std::uint64_t pos = data_offset;
  std::uint64_t records = 0;
  unsigned char rh[8];
  while (pos + 8 <= file_size) {
    f.seekg(static_cast<std::streamoff>(pos));
    if (!f.read(reinterpret_cast<char*>(rh), 8)) break;
    const std::uint16_t size = static_cast<std::uint16_t>(rh[6] | (rh[7] << 8));
    const std::uint32_t type =
        static_cast<std::uint32_t>(rh[0] | (rh[1] << 8) | (rh[2] << 16) |
                                   (static_cast<std::uint32_t>(rh[3]) << 24));
    // Record types are small numbers (user types start at 64); anything else
    // is a torn write.
    if (size < 8 || type == 0 || type > 0xffff || pos + size > file_size) break;
    pos += size;
    ++records;
  }
  if (records == 0) {
    *error = "no complete record after the header";
    return false;
  }
  const std::uint64_t new_size = pos - data_offset;
  unsigned char patch[8];
  for (int i = 0; i < 8; ++i) patch[i] = static_cast<unsigned char>(new_size >> (8 * i));
  f.clear();
  f.seekp(48);
  f.write(reinterpret_cast<const char*>(patch), 8);
  // adds_features bitmap (bytes 72..103): none of them were written.
  const char zeros[32] = {};
  f.seekp(72);
  f.write(zeros, sizeof(zeros));
  f.flush();
  if (!f) {
    *error = "cannot write the repaired header";
    return false;
  }
  f.close();
  std::error_code ec;
  if (pos < file_size) std::filesystem::resize_file(path, pos, ec);
  *note = "perf did not finish the file; its header was rebuilt from " +
          std::to_string(records) + " complete records (" +
          std::to_string(file_size - pos) + " bytes of a torn record cut)";
  return true;
}

}  // namespace labtrace::perf
