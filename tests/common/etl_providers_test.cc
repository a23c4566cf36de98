// Per-provider events and bytes of the six real ETL files: the C++ tally
// (common/etl/etl_providers) against the independent Python implementation
// (tests/tools/etl_providers.py, run here) and against hard numbers from the
// known-answer table (tests/common/etl_providers_known_answers.md); plus
// truncated and corrupt input and the provider cap.

#include "common/etl/etl_providers.h"

#include <cstring>
#include <filesystem>
#include <map>
#include <random>
#include <sstream>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "common/etl/etl_summary.h"
#include "common/subprocess.h"
#include "common/trace_summary.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/testing/test_util.h"

namespace labtrace::etl {
namespace {

using ::testing::HasSubstr;

constexpr const char* kFiles[] = {
    "sawbuck_image_data_32_v2.etl",
    "krabsetw_powershell.etl",
    "perfview_SelfDescribingSingleEvent.etl",
    "perfview_gcevents_PerfViewData.etl",
    "s4_WindowsUpdate.20251008.140245.443.8.etl",
    "airbus_ShutdownPerfDiagLogger.etl",
};
constexpr const char kPython[] = "/usr/bin/python3";

struct Tallied {
  EtlSummary summary;
  std::vector<ProviderStat> providers;
  std::uint64_t bytes = 0;
};

Tallied TallyBytes(const std::string& bytes,
                   std::size_t max = ProviderTally::kDefaultMaxProviders) {
  MemoryByteSource src(bytes.data(), bytes.size());
  ProviderTally tally(max);
  Tallied t;
  t.summary = SummarizeEtl(src, &tally);
  t.providers = tally.Results();
  t.bytes = tally.bytes();
  return t;
}

Tallied TallyFile(const std::filesystem::path& path) {
  FileByteSource src(path);
  ProviderTally tally;
  Tallied t;
  t.summary = SummarizeEtl(src, &tally);
  t.providers = tally.Results();
  t.bytes = tally.bytes();
  return t;
}

// One line per provider, as etl_providers.py --tsv prints it (without the
// file column): key, guid, source, events, bytes, name.
std::vector<std::string> Lines(const std::vector<ProviderStat>& providers) {
  std::vector<std::string> out;
  for (const ProviderStat& p : providers) {
    out.push_back(absl::StrCat(p.key, "\t", p.guid, "\t", p.source, "\t",
                               p.events, "\t", p.bytes, "\t", p.name));
  }
  return out;
}

// Runs the Python implementation on `path`; its provider lines and its
// "file" line (records, record bytes, events lost, buffers lost).
struct PythonAnswer {
  std::vector<std::string> providers;
  std::vector<std::string> file;
};
PythonAnswer RunPython(const std::filesystem::path& path,
                       const std::vector<std::string>& extra = {}) {
  subprocess::Options o;
  o.argv = {kPython,
            testing::SourcePath("tests/tools/etl_providers.py").string(),
            "--tsv"};
  o.argv.insert(o.argv.end(), extra.begin(), extra.end());
  o.argv.push_back(path.string());
  o.timeout = std::chrono::seconds(60);
  o.output_cap = 16 << 20;
  const subprocess::Result r = subprocess::Run(o);
  EXPECT_TRUE(r.ok()) << r.Describe() << "\n" << r.output;
  PythonAnswer a;
  for (absl::string_view line : absl::StrSplit(r.output, '\n')) {
    std::vector<std::string> f = absl::StrSplit(line, '\t');
    if (f.size() >= 2 && f[0] == "provider") {
      f.erase(f.begin(), f.begin() + 2);  // "provider", file.
      a.providers.push_back(absl::StrJoin(f, "\t"));
    } else if (f.size() >= 2 && f[0] == "file") {
      a.file.assign(f.begin() + 2, f.end());
    }
  }
  return a;
}

std::string PythonMissing() {
  std::error_code ec;
  if (!std::filesystem::exists(kPython, ec))
    return absl::StrCat(kPython, " is not installed");
  return "";
}

class ProviderKnownAnswerTest : public ::testing::TestWithParam<const char*> {};

TEST_P(ProviderKnownAnswerTest, MatchesThePythonImplementation) {
  const auto path = testing::TestdataEtl(GetParam());
  if (path.empty())
    GTEST_SKIP() << "../shared/testdata/etl is not beside this checkout";
  if (const std::string why = PythonMissing(); !why.empty())
    GTEST_SKIP() << why;
  const Tallied t = TallyFile(path);
  const PythonAnswer py = RunPython(path);
  ASSERT_FALSE(py.providers.empty());
  EXPECT_EQ(Lines(t.providers), py.providers);
  ASSERT_EQ(py.file.size(), 4u);
  EXPECT_EQ(py.file[0], std::to_string(t.summary.record_count));
  EXPECT_EQ(py.file[1], std::to_string(t.bytes));
  EXPECT_EQ(py.file[2], std::to_string(t.summary.events_lost));
  EXPECT_EQ(py.file[3], std::to_string(t.summary.buffers_lost));
}

TEST_P(ProviderKnownAnswerTest, EveryRecordIsSomeProviders) {
  const auto path = testing::TestdataEtl(GetParam());
  if (path.empty()) GTEST_SKIP() << "no test data";
  const Tallied t = TallyFile(path);
  std::uint64_t events = 0;
  std::uint64_t bytes = 0;
  for (const ProviderStat& p : t.providers) {
    events += p.events;
    bytes += p.bytes;
    EXPECT_FALSE(p.key.empty());
    EXPECT_FALSE(p.source.empty());
  }
  EXPECT_EQ(events, t.summary.record_count);
  EXPECT_EQ(bytes, t.bytes);
  EXPECT_TRUE(t.summary.record_count_complete);
}

// Keeps test names short in CTest.
std::string ParamName(const ::testing::TestParamInfo<const char*>& info) {
  std::string n = info.param;
  n = n.substr(0, n.find_first_of("._"));
  return absl::StrCat(n, info.index);
}

INSTANTIATE_TEST_SUITE_P(RealFiles, ProviderKnownAnswerTest,
                         ::testing::ValuesIn(kFiles), ParamName);

// Hard numbers from tests/common/etl_providers_known_answers.md.
TEST(EtlProvidersTest, KnownAnswers) {
  const auto airbus = testing::TestdataEtl("airbus_ShutdownPerfDiagLogger.etl");
  if (airbus.empty()) GTEST_SKIP() << "no test data";
  {
    const Tallied t = TallyFile(airbus);
    ASSERT_EQ(t.providers.size(), 4u);
    EXPECT_EQ(t.providers[0].key, "kernel:0x14");
    EXPECT_EQ(t.providers[0].name, "Kernel/Image");
    EXPECT_EQ(t.providers[0].source, "kernel-group");
    EXPECT_EQ(t.providers[0].guid, "2cb15d1d-5fc1-11d2-abe1-00a0c911f518");
    EXPECT_EQ(t.providers[0].events, 13683u);
    EXPECT_EQ(t.providers[0].bytes, 2667992u);
    EXPECT_EQ(t.providers[1].name, "Kernel/Thread");
    EXPECT_EQ(t.providers[1].events, 3058u);
    EXPECT_EQ(t.providers[1].bytes, 346160u);
    EXPECT_EQ(t.providers[2].name, "Kernel/Process");
    EXPECT_EQ(t.providers[2].events, 328u);
    EXPECT_EQ(t.providers[3].name, "Kernel/EventTrace");
    EXPECT_EQ(t.providers[3].events, 9u);
    EXPECT_EQ(t.bytes, 3088984u);
  }
  {
    const Tallied t = TallyFile(
        testing::TestdataEtl("s4_WindowsUpdate.20251008.140245.443.8.etl"));
    ASSERT_EQ(t.providers.size(), 2u);
    EXPECT_EQ(t.providers[0].key, "0b7a6f19-47c4-454e-8c5c-e868d637e4d8");
    EXPECT_EQ(t.providers[0].name, "WUTraceLogging");
    EXPECT_EQ(t.providers[0].source, "tracelogging");
    EXPECT_EQ(t.providers[0].events, 80u);
    EXPECT_EQ(t.providers[0].bytes, 22768u);
    EXPECT_EQ(t.summary.events_lost, 41u);
  }
  {
    // Compressed (relogged) file: classic MOF events, and one TraceLogging
    // event inside an LZ77 buffer.
    const Tallied t = TallyFile(
        testing::TestdataEtl("perfview_SelfDescribingSingleEvent.etl"));
    ASSERT_EQ(t.providers.size(), 4u);
    EXPECT_EQ(t.providers[0].name, "WinSATAssessment");
    EXPECT_EQ(t.providers[0].source, "mof");
    EXPECT_EQ(t.providers[0].bytes, 5352u);
    EXPECT_EQ(t.providers[3].name, "MySource");
    EXPECT_EQ(t.providers[3].source, "tracelogging");
    EXPECT_EQ(t.providers[3].events, 1u);
    EXPECT_EQ(t.providers[3].bytes, 168u);
  }
  {
    const Tallied t =
        TallyFile(testing::TestdataEtl("krabsetw_powershell.etl"));
    ASSERT_EQ(t.providers.size(), 2u);
    EXPECT_EQ(t.providers[0].name, "Microsoft-Windows-PowerShell");
    EXPECT_EQ(t.providers[0].source, "manifest");
    EXPECT_EQ(t.providers[0].events, 112u);
    EXPECT_EQ(t.providers[0].bytes, 152160u);
  }
}

// The summary the agent stores: top 10, count, record bytes.
TEST(EtlProvidersTest, TraceSummaryCarriesTheTopProviders) {
  const auto path = testing::TestdataEtl("airbus_ShutdownPerfDiagLogger.etl");
  if (path.empty()) GTEST_SKIP() << "no test data";
  std::vector<v1::ProviderStat> all;
  absl::StatusOr<std::optional<v1::TraceSummary>> s =
      SummarizeTraceFile(path, &all);
  ASSERT_TRUE(s.ok()) << s.status();
  ASSERT_TRUE(s->has_value());
  const v1::TraceSummary& x = **s;
  EXPECT_EQ(x.provider_count(), 4u);
  EXPECT_EQ(x.record_bytes(), 3088984u);
  ASSERT_EQ(x.top_providers_size(), 4);
  EXPECT_EQ(x.top_providers(0).name(), "Kernel/Image");
  EXPECT_EQ(x.top_providers(0).bytes(), 2667992u);
  EXPECT_EQ(all.size(), 4u);
}

TEST(EtlProvidersTest, TruncatedFileKeepsWhatWasRead) {
  const auto path = testing::TestdataEtl("airbus_ShutdownPerfDiagLogger.etl");
  if (path.empty()) GTEST_SKIP() << "no test data";
  const std::string bytes = testing::ReadTextFile(path);
  // Cut in the middle of the 11th buffer (64 KiB each).
  const std::string cut = bytes.substr(0, 10 * 65536 + 1000);
  const Tallied t = TallyBytes(cut);
  EXPECT_THAT(t.summary.problems, ::testing::Contains(HasSubstr("truncated")));
  ASSERT_FALSE(t.providers.empty());
  std::uint64_t events = 0;
  for (const ProviderStat& p : t.providers) events += p.events;
  EXPECT_EQ(events, t.summary.record_count);
  EXPECT_GT(events, 0u);
  EXPECT_LT(events, 17078u);
  // And the Python implementation reads the same part of the cut file.
  if (PythonMissing().empty()) {
    testing::TempDir dir;
    const auto cut_path = dir.path() / "cut.etl";
    testing::WriteTextFile(cut_path, cut);
    EXPECT_EQ(Lines(t.providers), RunPython(cut_path).providers);
  }
}

TEST(EtlProvidersTest, CorruptRecordsStopTheBufferNotTheTally) {
  const auto path = testing::TestdataEtl("krabsetw_powershell.etl");
  if (path.empty()) GTEST_SKIP() << "no test data";
  std::string bytes = testing::ReadTextFile(path);
  // Buffer 3 (8 KiB buffers): its first record gets an unknown header type.
  bytes[3 * 8192 + 0x48 + 2] = 0x7E;
  const Tallied t = TallyBytes(bytes);
  EXPECT_FALSE(t.summary.record_count_complete);
  std::uint64_t events = 0;
  for (const ProviderStat& p : t.providers) events += p.events;
  EXPECT_EQ(events, t.summary.record_count);
  EXPECT_GT(events, 0u);
  EXPECT_LT(events, 114u);
}

TEST(EtlProvidersTest, RandomCorruptionNeverCrashes) {
  std::mt19937 rng(1234);
  for (const char* f : kFiles) {
    const auto path = testing::TestdataEtl(f);
    if (path.empty()) GTEST_SKIP() << "no test data";
    const std::string original = testing::ReadTextFile(path);
    for (int round = 0; round < 20; ++round) {
      std::string bytes = original;
      // Flip bytes in record headers and extended items mostly.
      for (int i = 0; i < 64; ++i) {
        const std::size_t at = rng() % bytes.size();
        bytes[at] = static_cast<char>(rng());
      }
      const Tallied t = TallyBytes(bytes, 8);
      std::uint64_t events = 0;
      for (const ProviderStat& p : t.providers) {
        events += p.events;
        EXPECT_LE(p.name.size(), 256u);
      }
      EXPECT_EQ(events, t.summary.record_count) << f << " round " << round;
      EXPECT_LE(t.providers.size(), 9u);
    }
  }
}

// Synthetic EVENT_HEADER64 records with distinct provider GUIDs, in one
// uncompressed buffer after a minimal logfile header buffer.
std::string FileWithProviders(int providers, int events_each) {
  constexpr std::size_t kBuf = 1 << 20;
  std::string file(2 * kBuf, '\xFF');
  auto put16 = [&](std::size_t at, std::uint16_t v) {
    file[at] = static_cast<char>(v & 0xFF);
    file[at + 1] = static_cast<char>(v >> 8);
  };
  auto put32 = [&](std::size_t at, std::uint32_t v) {
    for (int i = 0; i < 4; ++i) file[at + i] = static_cast<char>(v >> (8 * i));
  };
  std::memset(&file[0], 0, 0x48);
  std::memset(&file[kBuf], 0, 0x48);
  // Header buffer: just a buffer header with no records.
  put32(0, kBuf);
  put32(0x30, 0x48);
  put16(0x36, 4);
  // Data buffer.
  std::size_t at = kBuf + 0x48;
  for (int e = 0; e < events_each; ++e) {
    for (int p = 0; p < providers; ++p) {
      std::memset(&file[at], 0, 0x58);
      put16(at, 0x58);  // Size: header + 8 bytes of payload.
      file[at + 2] = 0x13;
      file[at + 3] = static_cast<char>(0xC0);
      put32(at + 0x18, static_cast<std::uint32_t>(p + 1));  // Data1.
      at += 0x58;
    }
  }
  put32(kBuf, kBuf);
  put32(kBuf + 0x30, static_cast<std::uint32_t>(at - kBuf));
  put16(kBuf + 0x36, 0);
  return file;
}

TEST(EtlProvidersTest, ProviderCapCountsTheRestAsOther) {
  const std::string file = FileWithProviders(20, 3);
  const Tallied t = TallyBytes(file, 5);
  EXPECT_EQ(t.summary.record_count, 60u);
  ASSERT_EQ(t.providers.size(), 6u);  // 5 providers + "other".
  std::map<std::string, std::uint64_t> by_key;
  for (const ProviderStat& p : t.providers) by_key[p.key] = p.events;
  EXPECT_EQ(by_key["other"], 45u);
  EXPECT_EQ(by_key["00000001-0000-0000-0000-000000000000"], 3u);
  EXPECT_EQ(by_key["00000005-0000-0000-0000-000000000000"], 3u);
  EXPECT_EQ(by_key.count("00000006-0000-0000-0000-000000000000"), 0u);
  EXPECT_EQ(t.providers[0].key, "other");  // Most bytes.
  EXPECT_EQ(t.providers[0].source, "other");
  EXPECT_EQ(t.providers[1].source, "unknown");
  EXPECT_EQ(t.providers[1].name, "");

  // The default cap is far above this.
  const Tallied all = TallyBytes(file);
  EXPECT_EQ(all.providers.size(), 20u);

  // The Python implementation caps the same way.
  if (PythonMissing().empty()) {
    testing::TempDir dir;
    testing::WriteTextFile(dir.path() / "many.etl", file);
    EXPECT_EQ(
        Lines(t.providers),
        RunPython(dir.path() / "many.etl", {"--max-providers", "5"}).providers);
  }
}

TEST(EtlProvidersTest, GuidsAndNames) {
  const unsigned char g[16] = {0x19, 0x6f, 0x7a, 0x0b, 0xc4, 0x47, 0x4e, 0x45,
                               0x8c, 0x5c, 0xe8, 0x68, 0xd6, 0x37, 0xe4, 0xd8};
  EXPECT_EQ(FormatGuid(g), "0b7a6f19-47c4-454e-8c5c-e868d637e4d8");
  EXPECT_STREQ(WellKnownProviderName("edd08927-9cc4-4e65-b970-c2560fb5c289"),
               "Microsoft-Windows-Kernel-File");
  EXPECT_STREQ(WellKnownProviderName("0a002690-3839-4e3a-b3b6-96d8df868d99"),
               "Microsoft-Antimalware-Engine");  // First in the table.
  EXPECT_STREQ(WellKnownProviderName("f4e1897c-bb5d-5668-f1d8-040f4d8dd344"),
               "Microsoft-Windows-Threat-Intelligence");  // Last.
  EXPECT_STREQ(WellKnownProviderName("3d6fa8d4-fe05-11d0-9dda-00c04fd7ba7c"),
               "Kernel/DiskIo");
  EXPECT_EQ(WellKnownProviderName("00000000-0000-0000-0000-000000000001"),
            nullptr);
  EXPECT_EQ(KernelGroupName(0x01), "Kernel/DiskIo");
  EXPECT_EQ(KernelGroupName(0x7f), "Kernel/group 0x7f");
  EXPECT_STREQ(KernelGroupGuid(0x7f), "9e814aad-3204-11d2-9a82-006008a86939");
}

}  // namespace
}  // namespace labtrace::etl
