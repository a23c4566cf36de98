#include "common/names.h"

#include "gtest/gtest.h"

namespace labtrace {
namespace {

TEST(NamesTest, AcceptsValidNames) {
  for (const char* n : {"a", "setup_ebpf", "unit_tests", "A.b-c_9", "0start"}) {
    EXPECT_TRUE(IsValidName(n)) << n;
    EXPECT_TRUE(ValidateName("trace name", n).ok()) << n;
  }
  EXPECT_TRUE(IsValidName(std::string(64, 'x')));
}

TEST(NamesTest, RejectsBadNames) {
  for (const char* n : {"", "../x", "..", ".hidden", "-x", "_x", "a b", "a/b",
                        "a\\b", "x:y", "tab\t", "a\nb", "é"}) {
    EXPECT_FALSE(IsValidName(n)) << n;
    absl::Status s = ValidateName("trace name", n);
    EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << n;
    EXPECT_NE(s.message().find("trace name"), absl::string_view::npos);
  }
  absl::Status too_long = ValidateName("trace name", std::string(65, 'x'));
  EXPECT_EQ(too_long.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(too_long.message().find("65 characters"), absl::string_view::npos)
      << too_long.message();
}

TEST(NamesTest, OptionalNamesMayBeEmpty) {
  EXPECT_TRUE(ValidateOptionalName("run_id", "").ok());
  EXPECT_FALSE(ValidateOptionalName("run_id", "a/b").ok());
}

TEST(NamesTest, QuoteForMessageEscapesAndCuts) {
  EXPECT_EQ(QuoteForMessage("ab"), "\"ab\"");
  EXPECT_EQ(QuoteForMessage(std::string("a\0b\n", 4)), "\"a\\x00b\\x0a\"");
  std::string q = QuoteForMessage(std::string(500, 'z'));
  EXPECT_LT(q.size(), 120u);
  EXPECT_NE(q.find("500 bytes"), std::string::npos);
}

TEST(NamesTest, LabelValues) {
  EXPECT_TRUE(ValidateLabelValue("k", "any printable text: ok!").ok());
  EXPECT_FALSE(ValidateLabelValue("k", std::string(257, 'v')).ok());
  EXPECT_FALSE(ValidateLabelValue("k", "new\nline").ok());
}

}  // namespace
}  // namespace labtrace
