// The "one provider fills a large file" rule (controller/report/
// provider_warning): thresholds, the message, and what never warns.

#include "controller/report/provider_warning.h"

#include "gtest/gtest.h"

namespace labtrace::controller {
namespace {

constexpr std::uint64_t kGiB = 1ull << 30;

v1::TraceSummary Summary(std::uint64_t file_size, std::uint64_t record_bytes,
                         std::uint64_t top_bytes, const std::string& name) {
  v1::TraceSummary s;
  s.set_format("etl");
  s.set_file_size(file_size);
  s.set_record_bytes(record_bytes);
  v1::ProviderStat* p = s.add_top_providers();
  p->set_key("edd08927-9cc4-4e65-b970-c2560fb5c289");
  p->set_guid("edd08927-9cc4-4e65-b970-c2560fb5c289");
  p->set_name(name);
  p->set_source("manifest");
  p->set_events(1000);
  p->set_bytes(top_bytes);
  // The rest, in two smaller providers.
  v1::ProviderStat* q = s.add_top_providers();
  q->set_key("kernel:0x05");
  q->set_name("Kernel/Thread");
  q->set_bytes((record_bytes - top_bytes) / 2);
  v1::ProviderStat* r = s.add_top_providers();
  r->set_key("kernel:0x03");
  r->set_name("Kernel/Process");
  r->set_bytes(record_bytes - top_bytes - q->bytes());
  return s;
}

TEST(ProviderWarningTest, TheIssuesExample) {
  // A 2.4 GiB file; 81% of its record bytes are Kernel-File events.
  const std::uint64_t size = kGiB * 24 / 10;
  const std::uint64_t records = size - size / 50;
  const auto w = ProviderWarning(Summary(size, records, records * 81 / 100 + 1,
                                         "Microsoft-Windows-Kernel-File"));
  ASSERT_TRUE(w.has_value());
  EXPECT_EQ(*w,
            "Microsoft-Windows-Kernel-File: 81% of 2.4 GiB; narrow the "
            "profile");
}

TEST(ProviderWarningTest, Thresholds) {
  // Exactly at both thresholds: warns.
  EXPECT_TRUE(
      ProviderWarning(Summary(kProviderWarningMinFileBytes, 1000, 500, "P"))
          .has_value());
  EXPECT_EQ(
      *ProviderWarning(Summary(kProviderWarningMinFileBytes, 1000, 500, "P")),
      "P: 50% of 1.0 GiB; narrow the profile");
  // Just below the share.
  EXPECT_FALSE(ProviderWarning(Summary(4 * kGiB, 1000, 499, "P")).has_value());
  // Just below the size.
  EXPECT_FALSE(ProviderWarning(
                   Summary(kProviderWarningMinFileBytes - 1, 1000, 1000, "P"))
                   .has_value());
  // All of it.
  EXPECT_EQ(*ProviderWarning(Summary(3 * kGiB, 1000, 1000, "P")),
            "P: 100% of 3.0 GiB; narrow the profile");
}

TEST(ProviderWarningTest, NamesTheProviderByNameElseGuid) {
  EXPECT_EQ(*ProviderWarning(Summary(2 * kGiB, 100, 90, "")),
            "edd08927-9cc4-4e65-b970-c2560fb5c289: 90% of 2.0 GiB; narrow the "
            "profile");
}

TEST(ProviderWarningTest, PicksTheLargestEvenIfUnsorted) {
  v1::TraceSummary s = Summary(2 * kGiB, 1000, 300, "Small");
  s.mutable_top_providers(1)->set_bytes(700);
  EXPECT_EQ(*ProviderWarning(s),
            "Kernel/Thread: 70% of 2.0 GiB; narrow the "
            "profile");
}

TEST(ProviderWarningTest, NoProviderFiguresNoWarning) {
  v1::TraceSummary perf;
  perf.set_format("perf");
  perf.set_file_size(8 * kGiB);
  EXPECT_FALSE(ProviderWarning(perf).has_value());
  // An older agent: providers but no record_bytes.
  v1::TraceSummary old = Summary(8 * kGiB, 1000, 900, "P");
  old.set_record_bytes(0);
  EXPECT_FALSE(ProviderWarning(old).has_value());
}

}  // namespace
}  // namespace labtrace::controller
