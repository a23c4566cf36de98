// ETL summaries of six real files from public projects, checked against the
// known-answer table in ../shared/testdata/etl/README.md, plus hostile input.

#include "common/etl/etl_summary.h"

#include <fstream>
#include <random>
#include <sstream>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/testing/test_util.h"

namespace labtrace::etl {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

struct Known {
  const char* file;
  std::uint64_t size;
  std::uint32_t hdr_buffer_size;
  std::uint32_t first_buffer_size;
  std::uint32_t buffers_written;
  std::uint32_t buffers_walked;
  std::uint32_t events_lost;
  std::uint32_t buffers_lost;
  std::uint32_t pointer_size;
  std::uint32_t marker;
  std::uint32_t cpus;
  const char* logger;
  const char* os;  // OsVersion()
  std::uint8_t sub, sub_minor;
  std::uint32_t mode;
  std::vector<std::string> mode_names;
  std::uint64_t records;
  std::uint64_t start_ft, end_ft, boot_ft, perf_freq;
  std::uint32_t clock, cpu_mhz, max_file_size;
  const char* log_file_name;
  std::int64_t min_seq, max_seq;
};

// Keeps test names short in CTest (it appends the printed parameter).
void PrintTo(const Known& k, std::ostream* os) { *os << k.file; }

const std::vector<Known>& KnownAnswers() {
  static const std::vector<Known> k = {
      {"sawbuck_image_data_32_v2.etl",
       131072,
       65536,
       65536,
       2,
       2,
       0,
       0,
       4,
       0xC0010002,
       16,
       "Make Test Data Session",
       "6.1 build 7600",
       1,
       5,
       0x00000001,
       {"SEQUENTIAL"},
       27,
       129488146035903615ull,
       129488146056031559ull,
       129484742215811967ull,
       2337949,
       1,
       2394,
       100,
       R"(c:\src\sawbuck\trunk\src\sawbuck\log_lib\test_data\image_data_32_v2.etl)",
       1,
       1},
      {"krabsetw_powershell.etl",
       212992,
       8192,
       8192,
       26,
       26,
       0,
       0,
       8,
       0xC0020002,
       32,
       "usermode_trace",
       "10.0 build 22623",
       1,
       5,
       0x00000009,
       {"SEQUENTIAL", "NEWFILE"},
       114,
       133245763580175449ull,
       133245764954543828ull,
       133245750905000000ull,
       10000000,
       1,
       3400,
       1,
       R"(C:\Users\aaaaa\output1.etl)",
       1,
       25},
      {"perfview_SelfDescribingSingleEvent.etl",
       7403,
       65536,
       1024,
       3,
       3,
       0,
       0,
       8,
       0xC0020002,
       12,
       "Relogger",
       "10.0 build 22000",
       2,
       0,
       0x04010001,
       {"SEQUENTIAL", "RELOG", "COMPRESSED"},
       23,
       132949636352722435ull,
       132949636386242009ull,
       132943176705000000ull,
       10000000,
       1,
       3192,
       800,
       "[multiple files]",
       1,
       2},
      {"perfview_gcevents_PerfViewData.etl",
       327680,
       65536,
       65536,
       5,
       5,
       0,
       0,
       8,
       0xC0020002,
       8,
       "PerfViewSession",
       "10.0 build 19045",
       1,
       5,
       0x08000002,
       {"CIRCULAR", "INDEPENDENT_SESSION"},
       71,
       133232283966946549ull,
       133232284107010610ull,
       133226819165000000ull,
       10000000,
       1,
       3408,
       800,
       R"(C:\Dev\runtime\CoreLab\PerfViewData.etl)",
       1,
       4},
      {"s4_WindowsUpdate.20251008.140245.443.8.etl",
       28672,
       4096,
       4096,
       7,
       7,
       41,
       0,
       8,
       0xC0020002,
       1,
       "WindowsUpdate_trace_log",
       "10.0 build 22631",
       1,
       5,
       0x11002009,
       {"SEQUENTIAL", "NEWFILE", "USE_KBYTES_FOR_SIZE", "USE_PAGED_MEMORY",
        "NO_PER_PROCESSOR_BUFFERING"},
       82,
       134044309654479919ull,
       134044316089912269ull,
       134038496275000000ull,
       10000000,
       1,
       4491,
       512,
       R"(C:\Windows\Logs\WindowsUpdate\WindowsUpdate.20251008.140245.443.8.etl)",
       908,
       913},
      {"airbus_ShutdownPerfDiagLogger.etl",
       3211264,
       65536,
       65536,
       49,
       49,
       0,
       0,
       8,
       0xC0020002,
       2,
       "PerfDiag Logger",
       "10.0 build 18362",
       1,
       5,
       0x02000080,
       {"SECURE", "SYSTEM_LOGGER"},
       17078,
       132273542277445790ull,
       132273837534159885ull,
       132273542275000000ull,
       10000000,
       1,
       1992,
       20,
       R"(C:\Windows\system32\WDI\LogFiles\ShutdownPerfDiagLogger.etl)",
       1,
       48},
  };
  return k;
}

std::string ReadAll(const std::filesystem::path& p) {
  return testing::ReadTextFile(p);
}

EtlSummary FromBytes(const std::string& bytes) {
  MemoryByteSource src(bytes.data(), bytes.size());
  return SummarizeEtl(src);
}

class KnownAnswerTest : public ::testing::TestWithParam<Known> {};

TEST_P(KnownAnswerTest, ReproducesTheTable) {
  const Known& k = GetParam();
  const auto path = testing::TestdataEtl(k.file);
  if (path.empty())
    GTEST_SKIP() << "../shared/testdata/etl is not beside this checkout";
  FileByteSource src(path.string());
  ASSERT_TRUE(src.ok());
  const EtlSummary s = SummarizeEtl(src);
  EXPECT_TRUE(s.header_valid);
  EXPECT_EQ(s.file_size, k.size);
  EXPECT_EQ(s.buffer_size, k.hdr_buffer_size);
  EXPECT_EQ(s.first_buffer_size, k.first_buffer_size);
  EXPECT_EQ(s.buffers_written, k.buffers_written);
  EXPECT_EQ(s.buffers_found, k.buffers_walked);
  EXPECT_EQ(s.events_lost, k.events_lost);
  EXPECT_EQ(s.buffers_lost, k.buffers_lost);
  EXPECT_EQ(s.pointer_size, k.pointer_size);
  EXPECT_EQ(s.header_marker, k.marker);
  EXPECT_EQ(s.processor_count, k.cpus);
  EXPECT_EQ(s.logger_name, k.logger);
  EXPECT_EQ(s.log_file_name, k.log_file_name);
  EXPECT_EQ(s.OsVersion(), k.os);
  EXPECT_EQ(s.version[2], k.sub);
  EXPECT_EQ(s.version[3], k.sub_minor);
  EXPECT_EQ(s.log_file_mode, k.mode);
  EXPECT_EQ(s.log_file_mode_flags, k.mode_names);
  EXPECT_EQ(s.record_count, k.records);
  EXPECT_TRUE(s.record_count_complete);
  EXPECT_EQ(s.start_time_filetime, k.start_ft);
  EXPECT_EQ(s.end_time_filetime, k.end_ft);
  EXPECT_EQ(s.boot_time_filetime, k.boot_ft);
  EXPECT_EQ(s.perf_freq, k.perf_freq);
  EXPECT_EQ(s.clock_type, k.clock);
  EXPECT_EQ(s.cpu_speed_mhz, k.cpu_mhz);
  EXPECT_EQ(s.max_file_size, k.max_file_size);
  EXPECT_EQ(s.min_sequence, k.min_seq);
  EXPECT_EQ(s.max_sequence, k.max_seq);
  // Only the Windows Update file has a problem: its 41 lost events.
  if (k.events_lost > 0) {
    EXPECT_THAT(s.problems, ElementsAre("41 events lost"));
  } else {
    EXPECT_TRUE(s.problems.empty()) << ::testing::PrintToString(s.problems);
  }
}

INSTANTIATE_TEST_SUITE_P(RealFiles, KnownAnswerTest,
                         ::testing::ValuesIn(KnownAnswers()),
                         [](const auto& info) {
                           std::string n = info.param.file;
                           for (char& c : n) {
                             if (!std::isalnum(static_cast<unsigned char>(c)))
                               c = '_';
                           }
                           return n;
                         });

TEST(EtlSummaryTest, TimesConvertToUnix) {
  // 2023-03-29T15:12:38.017544Z
  EXPECT_EQ(EtlSummary::FiletimeToUnixNanos(133245763580175449ull),
            1680102758017544900ll);
  EXPECT_EQ(EtlSummary::FiletimeToUnixNanos(0), 0);
}

TEST(EtlSummaryTest, CompressedBuffersAreCounted) {
  const auto path =
      testing::TestdataEtl("perfview_SelfDescribingSingleEvent.etl");
  if (path.empty()) GTEST_SKIP() << "no test data";
  const EtlSummary s = FromBytes(ReadAll(path));
  EXPECT_EQ(s.compressed_buffers, 2u);
  EXPECT_EQ(s.record_count, 23u);
}

TEST(EtlSummaryTest, TruncatedFileIsReported) {
  const auto path = testing::TestdataEtl("krabsetw_powershell.etl");
  if (path.empty()) GTEST_SKIP() << "no test data";
  const std::string bytes = ReadAll(path);
  const EtlSummary s = FromBytes(bytes.substr(0, bytes.size() - 5000));
  EXPECT_TRUE(s.header_valid);
  EXPECT_EQ(s.buffers_found, 25u);
  ASSERT_FALSE(s.problems.empty());
  EXPECT_THAT(s.problems[0], HasSubstr("truncated"));
  EXPECT_THAT(::testing::PrintToString(s.problems),
              HasSubstr("only 25 of the 26 buffers"));
}

TEST(EtlSummaryTest, UnclosedFileIsReported) {
  const auto path = testing::TestdataEtl("krabsetw_powershell.etl");
  if (path.empty()) GTEST_SKIP() << "no test data";
  std::string bytes = ReadAll(path);
  // EndTime: logfile header (0x68) + 0x10.
  std::memset(bytes.data() + 0x68 + 0x10, 0, 8);
  const EtlSummary s = FromBytes(bytes);
  EXPECT_THAT(s.problems, ElementsAre(HasSubstr("file not closed")));
}

TEST(EtlSummaryTest, GarbageAndEmptyInput) {
  EXPECT_THAT(FromBytes("").problems, ElementsAre("empty file"));
  EXPECT_THAT(FromBytes("PERFILE2").problems,
              ElementsAre(HasSubstr("truncated")));
  EXPECT_THAT(FromBytes(std::string(4096, '\x7f')).problems,
              ::testing::Contains(HasSubstr("bad buffer at offset 0x0")));
  std::string zeros(0x48 + 64, '\0');
  zeros[0] = static_cast<char>(zeros.size());
  EtlSummary z = FromBytes(zeros);
  EXPECT_FALSE(z.header_valid);
  EXPECT_FALSE(z.problems.empty());
}

TEST(EtlSummaryTest, RandomCorruptionNeverCrashes) {
  // Bounded: 300 mutants of each real file (the fuzz target goes further).
  std::mt19937 rng(42);
  for (const Known& k : KnownAnswers()) {
    const auto path = testing::TestdataEtl(k.file);
    if (path.empty()) GTEST_SKIP() << "no test data";
    const std::string bytes = ReadAll(path);
    for (int i = 0; i < 300; ++i) {
      std::string m =
          bytes.substr(0, std::min<std::size_t>(bytes.size(), 1 << 18));
      const int flips = 1 + static_cast<int>(rng() % 16);
      for (int f = 0; f < flips; ++f)
        m[rng() % m.size()] = static_cast<char>(rng());
      if (rng() % 4 == 0) m.resize(rng() % m.size());
      (void)FromBytes(m);
    }
  }
}

TEST(XpressTest, DecodesLiteralsAndMatches) {
  // "abcabcabcabc": 3 literals then a match (offset 3, length 9).
  // Flags: bits from the top: 0,0,0 literal, 1 match; then end.
  std::vector<unsigned char> in;
  const std::uint32_t flags = 0x10000000u;  // bit 28 set: 4th token is a match
  for (int i = 0; i < 4; ++i)
    in.push_back(static_cast<unsigned char>(flags >> (8 * i)));
  in.insert(in.end(), {'a', 'b', 'c'});
  // Match: length 9 -> stored 9-3=6, offset 3 -> stored (3-1)<<3 = 16.
  const std::uint16_t m = static_cast<std::uint16_t>(((3 - 1) << 3) | 6);
  in.push_back(static_cast<unsigned char>(m));
  in.push_back(static_cast<unsigned char>(m >> 8));
  std::vector<unsigned char> out;
  ASSERT_TRUE(DecompressXpressLz77(in.data(), in.size(), 100, &out));
  EXPECT_EQ(std::string(out.begin(), out.end()), "abcabcabcabc");
  // A match reaching before the start is malformed.
  std::vector<unsigned char> bad = {0x00, 0x00, 0x00, 0x80, 0x10, 0x00};
  out.clear();
  EXPECT_FALSE(DecompressXpressLz77(bad.data(), bad.size(), 100, &out));
}

}  // namespace
}  // namespace labtrace::etl
