#include "common/etl/etl_summary.h"

#include <algorithm>
#include <cstring>

namespace labtrace::etl {
namespace {

constexpr std::uint32_t kBufferHeaderSize = 0x48;
constexpr std::uint32_t kSystemTraceHeaderSize = 0x20;
// Largest buffer (or decompressed payload) we will hold in memory. ETW
// buffers are at most a few MiB; anything larger is corrupt.
constexpr std::uint32_t kMaxBuffer = 64u << 20;

constexpr std::uint16_t kFlagEventsLost = 0x2;
constexpr std::uint16_t kFlagBufferLost = 0x4;
constexpr std::uint16_t kFlagCompressed = 0x40;
constexpr std::uint32_t kModeCircular = 0x2;

std::uint16_t U16(const unsigned char* p) {
  return static_cast<std::uint16_t>(p[0] | (p[1] << 8));
}
std::uint32_t U32(const unsigned char* p) {
  return static_cast<std::uint32_t>(p[0]) |
         (static_cast<std::uint32_t>(p[1]) << 8) |
         (static_cast<std::uint32_t>(p[2]) << 16) |
         (static_cast<std::uint32_t>(p[3]) << 24);
}
std::uint64_t U64(const unsigned char* p) {
  return static_cast<std::uint64_t>(U32(p)) |
         (static_cast<std::uint64_t>(U32(p + 4)) << 32);
}

std::string Hex(std::uint64_t v) {
  char buf[32];
  std::snprintf(buf, sizeof(buf), "0x%llx", static_cast<unsigned long long>(v));
  return buf;
}

// UTF-16LE, NUL-terminated within [p, end), to UTF-8. Advances *p past the
// terminator. Unpaired surrogates become U+FFFD.
std::string ReadUtf16(const unsigned char** p, const unsigned char* end) {
  std::string out;
  auto put = [&out](std::uint32_t cp) {
    if (cp < 0x80) {
      out += static_cast<char>(cp);
    } else if (cp < 0x800) {
      out += static_cast<char>(0xC0 | (cp >> 6));
      out += static_cast<char>(0x80 | (cp & 0x3F));
    } else if (cp < 0x10000) {
      out += static_cast<char>(0xE0 | (cp >> 12));
      out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
      out += static_cast<char>(0x80 | (cp & 0x3F));
    } else {
      out += static_cast<char>(0xF0 | (cp >> 18));
      out += static_cast<char>(0x80 | ((cp >> 12) & 0x3F));
      out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
      out += static_cast<char>(0x80 | (cp & 0x3F));
    }
  };
  while (*p + 2 <= end) {
    std::uint32_t u = U16(*p);
    *p += 2;
    if (u == 0) break;
    if (u >= 0xD800 && u <= 0xDBFF && *p + 2 <= end) {
      const std::uint32_t lo = U16(*p);
      if (lo >= 0xDC00 && lo <= 0xDFFF) {
        *p += 2;
        put(0x10000 + ((u - 0xD800) << 10) + (lo - 0xDC00));
        continue;
      }
    }
    put(u >= 0xD800 && u <= 0xDFFF ? 0xFFFD : u);
    if (out.size() > 4096) break;  // Names are short; stop runaway strings.
  }
  return out;
}

// Counts records in [data, data + size), handing each to `sink` if set.
// Returns false if a record could not be read (the count so far is kept in
// *count).
bool CountRecords(const unsigned char* data, std::size_t size,
                  std::uint64_t* count, std::string* why, RecordSink* sink) {
  std::size_t p = 0;
  while (p + 4 <= size) {
    if (U32(data + p) == 0xFFFFFFFFu) return true;  // Padding to the end.
    const std::uint8_t type = data[p + 2];
    std::uint32_t rec = 0;
    switch (type) {
      case 0x0A:  // EVENT_TRACE_HEADER (full, 32/64)
      case 0x0B:
      case 0x12:  // EVENT_HEADER and friends
      case 0x13:
      case 0x14:
      case 0x15:
        rec = U16(data + p);
        break;
      case 0x01:  // SYSTEM_TRACE_HEADER 32/64, compact
      case 0x02:
      case 0x03:
      case 0x04:
      case 0x10:  // PERFINFO_TRACE_HEADER 32/64
      case 0x11:
        if (p + 6 > size) {
          *why = "record header cut off";
          return false;
        }
        rec = U16(data + p + 4);
        break;
      default:
        *why = "unknown record header type " + Hex(type) + " at +" +
               Hex(p + kBufferHeaderSize);
        return false;
    }
    if (rec < 4) {
      *why = "record of size " + std::to_string(rec) + " at +" +
             Hex(p + kBufferHeaderSize);
      return false;
    }
    if (p + rec > size) {
      *why = "record at +" + Hex(p + kBufferHeaderSize) +
             " runs past the buffer's data";
      return false;
    }
    ++*count;
    const std::size_t stored =
        (static_cast<std::size_t>(rec) + 7) & ~static_cast<std::size_t>(7);
    if (sink != nullptr) sink->OnRecord(data + p, rec, stored);
    p += stored;
  }
  return true;
}

// The file read front to back through one reused window: each byte is read
// once, in large sequential reads (one ReadAt per kWindowChunk bytes instead
// of two small ones per ETL buffer), and the buffers are walked in place.
// Memory: max(kWindowChunk, the largest request), and requests are at most
// one ETL buffer (<= kMaxBuffer), so the bound is the same as before.
class Window {
 public:
  static constexpr std::size_t kWindowChunk = 256u << 10;

  Window(ByteSource& source, std::uint64_t file_size)
      : source_(source), file_size_(file_size) {}

  // Bytes [pos, pos + n) of the file, n <= kMaxBuffer. *got is how many of
  // the n are there (fewer only if the source returned a short read). The
  // pointer is valid until the next call.
  const unsigned char* Get(std::uint64_t pos, std::size_t n, std::size_t* got) {
    if (pos >= start_ && pos - start_ <= have_ &&
        n <= have_ - static_cast<std::size_t>(pos - start_)) {
      *got = n;
      return data_.data() + (pos - start_);
    }
    // Keep what we already have of [pos, ...), read the rest.
    std::size_t keep = 0;
    if (pos >= start_ && pos - start_ < have_) {
      const auto from = static_cast<std::size_t>(pos - start_);
      keep = have_ - from;
      std::memmove(data_.data(), data_.data() + from, keep);
    }
    const std::uint64_t remain = pos < file_size_ ? file_size_ - pos : 0;
    const auto want = static_cast<std::size_t>(
        std::min<std::uint64_t>(std::max(n, kWindowChunk), remain));
    if (data_.size() < want) data_.resize(want);
    start_ = pos;
    have_ = keep;
    if (want > keep) {
      have_ += source_.ReadAt(pos + keep, data_.data() + keep, want - keep);
    }
    *got = std::min(n, have_);
    return data_.data();
  }

 private:
  ByteSource& source_;
  const std::uint64_t file_size_;
  std::vector<unsigned char> data_;
  std::uint64_t start_ = 0;  // File offset of data_[0].
  std::size_t have_ = 0;     // Valid bytes in data_.
};

void ParseLogfileHeader(const unsigned char* buf, std::size_t size,
                        EtlSummary* s) {
  // buf holds the first buffer (at least its valid data).
  if (size < kBufferHeaderSize + kSystemTraceHeaderSize) {
    s->problems.push_back(
        "bad header: the first buffer is too small for a logfile header");
    return;
  }
  const unsigned char* rec = buf + kBufferHeaderSize;
  s->header_marker = U32(rec);
  const std::uint8_t type = rec[2];
  if ((s->header_marker & 0xFFFF) != 2 || (type != 1 && type != 2) ||
      rec[3] != 0xC0) {
    s->problems.push_back("bad header: no logfile header record (marker " +
                          Hex(s->header_marker) + ")");
    return;
  }
  const bool is64 = type == 2;
  const std::uint32_t header_size = is64 ? 0x118 : 0x110;
  const std::size_t rec_size = U16(rec + 4);
  const std::size_t rec_end = std::min(size, kBufferHeaderSize + rec_size);
  const unsigned char* h = rec + kSystemTraceHeaderSize;
  if (kBufferHeaderSize + kSystemTraceHeaderSize + header_size > rec_end) {
    s->problems.push_back("bad header: logfile header record is cut short (" +
                          std::to_string(rec_size) + " bytes)");
    return;
  }
  s->buffer_size = U32(h + 0x00);
  std::memcpy(s->version, h + 0x04, 4);
  s->os_build = U32(h + 0x08);
  s->processor_count = U32(h + 0x0C);
  s->end_time_filetime = U64(h + 0x10);
  s->max_file_size = U32(h + 0x1C);
  s->log_file_mode = U32(h + 0x20);
  s->buffers_written = U32(h + 0x24);
  s->pointer_size = U32(h + 0x2C);
  s->events_lost = U32(h + 0x30);
  s->cpu_speed_mhz = U32(h + 0x34);
  const std::size_t tail = is64 ? 0xF8 : 0xF0;  // After TimeZone and padding.
  s->boot_time_filetime = U64(h + tail);
  s->perf_freq = U64(h + tail + 0x08);
  s->start_time_filetime = U64(h + tail + 0x10);
  s->clock_type = U32(h + tail + 0x18);
  s->buffers_lost = U32(h + tail + 0x1C);
  s->log_file_mode_flags = LogFileModeNames(s->log_file_mode);
  const unsigned char* strings = h + header_size;
  const unsigned char* end = buf + rec_end;
  s->logger_name = ReadUtf16(&strings, end);
  s->log_file_name = ReadUtf16(&strings, end);
  s->header_valid = true;
  if (s->pointer_size != (is64 ? 8u : 4u)) {
    s->problems.push_back(
        "bad header: pointer size " + std::to_string(s->pointer_size) +
        " does not match the " + (is64 ? "64" : "32") + "-bit header");
  }
}

}  // namespace

FileByteSource::FileByteSource(const std::filesystem::path& path)
    : in_(path, std::ios::binary) {
  if (!in_) return;
  in_.seekg(0, std::ios::end);
  const std::streamoff end = in_.tellg();
  in_.seekg(0);
  if (end < 0) return;
  size_ = static_cast<std::uint64_t>(end);
  ok_ = true;
}

std::size_t FileByteSource::ReadAt(std::uint64_t offset, void* out,
                                   std::size_t n) {
  if (!ok_ || offset >= size_) return 0;
  in_.clear();
  in_.seekg(static_cast<std::streamoff>(offset));
  in_.read(static_cast<char*>(out), static_cast<std::streamsize>(n));
  return static_cast<std::size_t>(std::max<std::streamsize>(in_.gcount(), 0));
}

std::size_t MemoryByteSource::ReadAt(std::uint64_t offset, void* out,
                                     std::size_t n) {
  if (offset >= size_) return 0;
  const std::size_t k =
      std::min<std::size_t>(n, size_ - static_cast<std::size_t>(offset));
  std::memcpy(out, data_ + offset, k);
  return k;
}

std::string EtlSummary::OsVersion() const {
  return std::to_string(version[0]) + "." + std::to_string(version[1]) +
         " build " + std::to_string(os_build);
}

std::int64_t EtlSummary::FiletimeToUnixNanos(std::uint64_t ft) {
  constexpr std::uint64_t kEpochDiff = 116444736000000000ull;  // 1601 -> 1970.
  if (ft == 0 || ft < kEpochDiff) return 0;
  return static_cast<std::int64_t>((ft - kEpochDiff) * 100);
}

std::vector<std::string> LogFileModeNames(std::uint32_t mode) {
  static const struct {
    std::uint32_t bit;
    const char* name;
  } kBits[] = {
      {0x00000001, "SEQUENTIAL"},
      {0x00000002, "CIRCULAR"},
      {0x00000004, "APPEND"},
      {0x00000008, "NEWFILE"},
      {0x00000020, "PREALLOCATE"},
      {0x00000040, "NONSTOPPABLE"},
      {0x00000080, "SECURE"},
      {0x00000100, "REAL_TIME"},
      {0x00000200, "DELAY_OPEN_FILE"},
      {0x00000400, "BUFFERING"},
      {0x00000800, "PRIVATE_LOGGER"},
      {0x00001000, "ADD_HEADER"},
      {0x00002000, "USE_KBYTES_FOR_SIZE"},
      {0x00004000, "USE_GLOBAL_SEQUENCE"},
      {0x00008000, "USE_LOCAL_SEQUENCE"},
      {0x00010000, "RELOG"},
      {0x00020000, "PRIVATE_IN_PROC"},
      {0x00200000, "PERSIST_ON_HYBRID_SHUTDOWN"},
      {0x00400000, "STOP_ON_HYBRID_SHUTDOWN"},
      {0x01000000, "USE_PAGED_MEMORY"},
      {0x02000000, "SYSTEM_LOGGER"},
      {0x04000000, "COMPRESSED"},
      {0x08000000, "INDEPENDENT_SESSION"},
      {0x10000000, "NO_PER_PROCESSOR_BUFFERING"},
      {0x20000000, "BLOCKING"},
      {0x80000000, "ADDTO_TRIAGE_DUMP"},
  };
  std::vector<std::string> names;
  std::uint32_t known = 0;
  for (const auto& b : kBits) {
    known |= b.bit;
    if (mode & b.bit) names.push_back(b.name);
  }
  if (mode & ~known) names.push_back(Hex(mode & ~known));
  return names;
}

bool DecompressXpressLz77(const unsigned char* in, std::size_t in_size,
                          std::size_t max_output,
                          std::vector<unsigned char>* out) {
  const std::size_t base = out->size();
  std::size_t ip = 0;
  std::uint32_t flags = 0;
  int flag_count = 0;
  std::size_t last_half_byte = 0;  // 0: none pending.
  bool have_half = false;
  while (out->size() - base < max_output) {
    if (flag_count == 0) {
      if (ip + 4 > in_size) return ip == in_size;
      flags = U32(in + ip);
      ip += 4;
      flag_count = 32;
    }
    --flag_count;
    if ((flags & (1u << flag_count)) == 0) {
      if (ip >= in_size) return true;  // Input ended on a literal boundary.
      out->push_back(in[ip++]);
      continue;
    }
    if (ip == in_size) return true;
    if (ip + 2 > in_size) return false;
    const std::uint32_t match = U16(in + ip);
    ip += 2;
    std::size_t length = match % 8;
    const std::size_t offset = match / 8 + 1;
    if (length == 7) {
      if (!have_half) {
        if (ip >= in_size) return false;
        length = in[ip] % 16;
        last_half_byte = ip;
        have_half = true;
        ++ip;
      } else {
        length = in[last_half_byte] / 16;
        have_half = false;
      }
      if (length == 15) {
        if (ip >= in_size) return false;
        length = in[ip++];
        if (length == 255) {
          if (ip + 2 > in_size) return false;
          length = U16(in + ip);
          ip += 2;
          if (length == 0) {
            if (ip + 4 > in_size) return false;
            length = U32(in + ip);
            ip += 4;
          }
          if (length < 15 + 7) return false;
          length -= 15 + 7;
        }
        length += 15;
      }
      length += 7;
    }
    length += 3;
    const std::size_t produced = out->size() - base;
    if (offset > produced) return false;  // Points before the start.
    for (std::size_t i = 0; i < length && out->size() - base < max_output;
         ++i) {
      out->push_back((*out)[out->size() - offset]);
    }
  }
  return true;
}

EtlSummary SummarizeEtl(ByteSource& source, RecordSink* sink) {
  EtlSummary s;
  s.file_size = source.size();
  if (s.file_size == 0) {
    s.problems.push_back("empty file");
    return s;
  }
  if (s.file_size < kBufferHeaderSize) {
    s.problems.push_back("truncated: " + std::to_string(s.file_size) +
                         " bytes, less than one buffer header");
    return s;
  }
  Window window(source, s.file_size);
  std::vector<unsigned char> inflated;
  std::size_t got = 0;
  std::uint64_t pos = 0;
  std::uint32_t unreadable_buffers = 0;
  // LZ77 can expand a few bytes into gigabytes: bound the total work so a
  // hostile file cannot make us spin. Real files expand about 2-10x.
  std::uint64_t inflate_budget = 32 * s.file_size + (64u << 20);
  std::string first_unreadable;
  while (pos + kBufferHeaderSize <= s.file_size) {
    const unsigned char* hdr = window.Get(pos, kBufferHeaderSize, &got);
    if (got != kBufferHeaderSize) {
      s.problems.push_back("read error at offset " + Hex(pos));
      break;
    }
    const std::uint32_t size = U32(hdr + 0x00);
    if (size < kBufferHeaderSize || size > kMaxBuffer) {
      s.problems.push_back("bad buffer at offset " + Hex(pos) + ": size " +
                           std::to_string(size) +
                           (pos == 0 ? " (not an ETL file?)" : ""));
      break;
    }
    if (pos + size > s.file_size) {
      s.problems.push_back("truncated: the buffer at offset " + Hex(pos) +
                           " needs " + std::to_string(size) + " bytes, only " +
                           std::to_string(s.file_size - pos) + " remain");
      break;
    }
    const std::uint32_t offset = U32(hdr + 0x30);
    const std::uint16_t flags = U16(hdr + 0x34);
    const std::uint16_t type = U16(hdr + 0x36);
    const auto seq = static_cast<std::int64_t>(U64(hdr + 0x18));
    ++s.buffers_found;
    if (pos == 0) s.first_buffer_size = size;
    if (type != 4 && pos != 0) {  // Data buffers: sequence range.
      if (s.min_sequence < 0 || seq < s.min_sequence) s.min_sequence = seq;
      if (seq > s.max_sequence) s.max_sequence = seq;
    }
    if (flags & kFlagEventsLost) ++s.buffers_flagged_events_lost;
    (void)kFlagBufferLost;

    // The buffer's records.
    std::string why;
    bool walked = true;
    if (offset < kBufferHeaderSize) {
      why = "data end " + Hex(offset) + " inside the buffer header";
      walked = false;
    } else if (flags & kFlagCompressed) {
      ++s.compressed_buffers;
      // hdr is invalid from here on (the window may move).
      const unsigned char* whole = window.Get(pos, size, &got);
      if (got != size) {
        why = "read error";
        walked = false;
      } else {
        const unsigned char* payload = whole + kBufferHeaderSize;
        const std::size_t payload_size = size - kBufferHeaderSize;
        const std::size_t expect = offset - kBufferHeaderSize;
        // A buffer never holds more than the session's buffer size.
        const std::size_t limit = s.header_valid && s.buffer_size > 0
                                      ? std::min(s.buffer_size, kMaxBuffer)
                                      : (1u << 20);
        inflated.clear();
        if (expect > limit) {
          why =
              "compressed payload claims " + std::to_string(expect) + " bytes";
          walked = false;
        } else if (expect > inflate_budget) {
          why = "decompression budget exhausted";
          walked = false;
        } else if (!DecompressXpressLz77(payload, payload_size, expect,
                                         &inflated) ||
                   inflated.size() != expect) {
          why = "LZ77 payload does not expand to " + std::to_string(expect) +
                " bytes";
          walked = false;
        } else {
          inflate_budget -= expect;
          walked = CountRecords(inflated.data(), inflated.size(),
                                &s.record_count, &why, sink);
        }
      }
    } else {
      const std::uint32_t end = std::min(offset, size);
      // hdr is invalid from here on (the window may move).
      const unsigned char* b = window.Get(pos, end, &got);
      if (got != end) {
        why = "read error";
        walked = false;
      } else {
        if (pos == 0) ParseLogfileHeader(b, end, &s);
        walked = CountRecords(b + kBufferHeaderSize, end - kBufferHeaderSize,
                              &s.record_count, &why, sink);
      }
    }
    if (pos == 0 && !s.header_valid && (flags & kFlagCompressed)) {
      s.problems.push_back("bad header: the first buffer is compressed");
    }
    if (!walked) {
      s.record_count_complete = false;
      if (unreadable_buffers++ == 0)
        first_unreadable = "buffer at offset " + Hex(pos) + ": " + why;
    }
    pos += size;
  }
  if (pos < s.file_size && pos + kBufferHeaderSize > s.file_size) {
    s.problems.push_back("truncated: " + std::to_string(s.file_size - pos) +
                         " stray bytes after the last whole buffer");
  }
  if (unreadable_buffers > 0) {
    s.problems.push_back(
        "records unreadable in " + std::to_string(unreadable_buffers) +
        " buffer(s), record count incomplete; first: " + first_unreadable);
  }
  if (s.header_valid) {
    if (s.end_time_filetime == 0) {
      s.problems.push_back(
          "file not closed: the logfile header has no end time "
          "(the session was not stopped cleanly)");
    }
    if (s.events_lost > 0)
      s.problems.push_back(std::to_string(s.events_lost) + " events lost");
    if (s.buffers_lost > 0) {
      s.problems.push_back(std::to_string(s.buffers_lost) + " buffers lost");
    }
    if (!(s.log_file_mode & kModeCircular) &&
        s.buffers_found < s.buffers_written) {
      s.problems.push_back("only " + std::to_string(s.buffers_found) +
                           " of the " + std::to_string(s.buffers_written) +
                           " buffers written are in the file");
    }
  } else if (s.problems.empty()) {
    s.problems.push_back("bad header: no logfile header found");
  }
  return s;
}

}  // namespace labtrace::etl
