#include "common/yaml_util.h"

#include <cstdint>
#include <limits>
#include <string>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace labtrace {
namespace {

using ::testing::HasSubstr;
using ::testing::StartsWith;

// The value of `key` in a one-document mapping; `text` must parse.
YAML::Node Field(const std::string& text, const char* key) {
  absl::StatusOr<YAML::Node> root = ParseYaml(text, "t.yaml");
  EXPECT_TRUE(root.ok()) << root.status();
  return root.ok() ? YAML::Node((*root)[key]) : YAML::Node();
}

std::string Message(const absl::Status& s) { return std::string(s.message()); }

TEST(YamlUtilTest, ParseYamlAndYamlErrorNameTheLine) {
  absl::StatusOr<YAML::Node> bad = ParseYaml("a: [1\n", "t.yaml");
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(Message(bad.status()), StartsWith("t.yaml:"));

  const YAML::Node n = Field("a: 1\nb: 2\n", "b");
  absl::Status e = YamlError("t.yaml", n, "oops");
  EXPECT_EQ(e.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(Message(e), "t.yaml:2: oops");
  // A node built in code has no line.
  EXPECT_EQ(Message(YamlError("t.yaml", YAML::Node("x"), "oops")),
            "t.yaml: oops");
}

TEST(YamlUtilTest, CheckYamlKeysListsTheKnownKeys) {
  absl::StatusOr<YAML::Node> root = ParseYaml("a: 1\nc: 2\n", "t.yaml");
  ASSERT_TRUE(root.ok());
  EXPECT_TRUE(CheckYamlKeys("t.yaml", *root, "top", {"a", "c"}).ok());
  absl::Status s = CheckYamlKeys("t.yaml", *root, "top", {"a", "b"});
  EXPECT_EQ(Message(s), "t.yaml:2: unknown key \"c\" in top; known keys: a, b");
  EXPECT_THAT(
      Message(CheckYamlKeys("t.yaml", Field("a: [1]\n", "a"), "a", {"x"})),
      HasSubstr("a must be a mapping"));
}

TEST(YamlUtilTest, ReadString) {
  std::string out;
  ASSERT_TRUE(YamlReadString("t.yaml", Field("a: hello\n", "a"), &out).ok());
  EXPECT_EQ(out, "hello");
  // Numbers and booleans are text too, as written.
  ASSERT_TRUE(YamlReadString("t.yaml", Field("a: 007\n", "a"), &out).ok());
  EXPECT_EQ(out, "007");
  ASSERT_TRUE(YamlReadString("t.yaml", Field("a: \"\"\n", "a"), &out).ok());
  EXPECT_EQ(out, "");

  out = "unchanged";
  for (const char* yaml : {"\na: [x, y]\n", "\na: {x: 1}\n", "\na: ~\n"}) {
    absl::Status s = YamlReadString("t.yaml", Field(yaml, "a"), &out);
    EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << yaml;
    EXPECT_EQ(Message(s), "t.yaml:2: expected a string") << yaml;
  }
  EXPECT_EQ(out, "unchanged");
}

TEST(YamlUtilTest, ReadInt) {
  int out = 0;
  ASSERT_TRUE(YamlReadInt("t.yaml", Field("a: 42\n", "a"), 1, 64, &out).ok());
  EXPECT_EQ(out, 42);
  // The bounds are inclusive.
  ASSERT_TRUE(YamlReadInt("t.yaml", Field("a: 1\n", "a"), 1, 64, &out).ok());
  EXPECT_EQ(out, 1);
  ASSERT_TRUE(YamlReadInt("t.yaml", Field("a: 64\n", "a"), 1, 64, &out).ok());
  EXPECT_EQ(out, 64);
  ASSERT_TRUE(YamlReadInt("t.yaml", Field("a: -3\n", "a"), -5, 5, &out).ok());
  EXPECT_EQ(out, -3);

  out = 7;
  for (const char* yaml :
       {"\n\na: x\n", "\n\na: 1.5\n", "\n\na: 12abc\n", "\n\na: [1]\n",
        "\n\na: ~\n", "\n\na: 99999999999999999999\n"}) {
    absl::Status s = YamlReadInt("t.yaml", Field(yaml, "a"), 1, 64, &out);
    EXPECT_EQ(Message(s), "t.yaml:3: expected an integer") << yaml;
  }
  absl::Status high = YamlReadInt("t.yaml", Field("a: 65\n", "a"), 1, 64, &out);
  EXPECT_EQ(high.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(Message(high), "t.yaml:1: value 65 out of range [1, 64]");
  EXPECT_EQ(Message(YamlReadInt("t.yaml", Field("a: 0\n", "a"), 1, 64, &out)),
            "t.yaml:1: value 0 out of range [1, 64]");
  EXPECT_EQ(out, 7);
}

TEST(YamlUtilTest, ReadBool) {
  bool out = false;
  for (const char* yaml : {"a: true\n", "a: yes\n", "a: on\n", "a: True\n"}) {
    out = false;
    ASSERT_TRUE(YamlReadBool("t.yaml", Field(yaml, "a"), &out).ok()) << yaml;
    EXPECT_TRUE(out) << yaml;
  }
  for (const char* yaml : {"a: false\n", "a: no\n", "a: off\n"}) {
    out = true;
    ASSERT_TRUE(YamlReadBool("t.yaml", Field(yaml, "a"), &out).ok()) << yaml;
    EXPECT_FALSE(out) << yaml;
  }
  out = true;
  for (const char* yaml :
       {"\na: maybe\n", "\na: 1\n", "\na: [true]\n", "\na: ~\n"}) {
    absl::Status s = YamlReadBool("t.yaml", Field(yaml, "a"), &out);
    EXPECT_EQ(Message(s), "t.yaml:2: expected true or false") << yaml;
  }
  EXPECT_TRUE(out);
}

TEST(YamlUtilTest, ParseBytesValue) {
  struct Case {
    const char* text;
    std::uint64_t want;
  } cases[] = {
      {"0", 0},
      {"1073741824", 1073741824ull},
      {"512MiB", 512ull << 20},
      {"2 GiB", 2ull << 30},
      {" 3K ", 3ull << 10},
      {"4KB", 4ull << 10},
      {"5M", 5ull << 20},
      {"1TiB", 1ull << 40},
      {"7B", 7},
  };
  for (const Case& c : cases) {
    std::uint64_t out = 1;
    ASSERT_TRUE(ParseBytesValue(c.text, &out).ok()) << c.text;
    EXPECT_EQ(out, c.want) << c.text;
  }
  std::uint64_t out = 9;
  EXPECT_EQ(Message(ParseBytesValue("lots", &out)),
            "bad size \"lots\"; use bytes or a unit: 512MiB, 2GiB");
  EXPECT_EQ(Message(ParseBytesValue("-1", &out)),
            "bad size \"-1\"; use bytes or a unit: 512MiB, 2GiB");
  EXPECT_EQ(Message(ParseBytesValue("3PiB", &out)),
            "bad size unit \"PiB\" in \"3PiB\"; use KiB, MiB, GiB, TiB");
  EXPECT_EQ(Message(ParseBytesValue("2mb", &out)),
            "bad size unit \"mb\" in \"2mb\"; use KiB, MiB, GiB, TiB");
  EXPECT_EQ(Message(ParseBytesValue("16777216TiB", &out)),
            "size \"16777216TiB\" is too large");
  // Too many digits for 64 bits.
  EXPECT_FALSE(ParseBytesValue("99999999999999999999", &out).ok());
  EXPECT_EQ(out, 9u);
  // The largest that fits.
  ASSERT_TRUE(ParseBytesValue("16777215TiB", &out).ok());
  EXPECT_EQ(out, 16777215ull << 40);
  ASSERT_TRUE(ParseBytesValue("18446744073709551615", &out).ok());
  EXPECT_EQ(out, std::numeric_limits<std::uint64_t>::max());
}

TEST(YamlUtilTest, ReadBytes) {
  std::uint64_t out = 0;
  ASSERT_TRUE(YamlReadBytes("t.yaml", Field("a: 512MiB\n", "a"), &out).ok());
  EXPECT_EQ(out, 512ull << 20);
  ASSERT_TRUE(YamlReadBytes("t.yaml", Field("a: 4096\n", "a"), &out).ok());
  EXPECT_EQ(out, 4096u);

  out = 5;
  EXPECT_EQ(Message(YamlReadBytes("t.yaml", Field("\na: [1]\n", "a"), &out)),
            "t.yaml:2: expected a size");
  EXPECT_EQ(Message(YamlReadBytes("t.yaml", Field("\na: 2 XiB\n", "a"), &out)),
            "t.yaml:2: bad size unit \"XiB\" in \"2 XiB\"; use KiB, MiB, "
            "GiB, TiB");
  EXPECT_EQ(Message(YamlReadBytes("t.yaml", Field("\n\na: big\n", "a"), &out)),
            "t.yaml:3: bad size \"big\"; use bytes or a unit: 512MiB, 2GiB");
  EXPECT_EQ(out, 5u);
}

TEST(YamlUtilTest, ParseDurationValue) {
  absl::Duration out;
  ASSERT_TRUE(ParseDurationValue("90s", &out).ok());
  EXPECT_EQ(out, absl::Seconds(90));
  ASSERT_TRUE(ParseDurationValue("10m", &out).ok());
  EXPECT_EQ(out, absl::Minutes(10));
  ASSERT_TRUE(ParseDurationValue("1h30m", &out).ok());
  EXPECT_EQ(out, absl::Minutes(90));
  ASSERT_TRUE(ParseDurationValue("250ms", &out).ok());
  EXPECT_EQ(out, absl::Milliseconds(250));

  out = absl::Seconds(7);
  for (const char* text : {"banana", "90", "0s", "-5s", "", "10 parsecs"}) {
    absl::Status s = ParseDurationValue(text, &out);
    EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << text;
    EXPECT_EQ(Message(s),
              absl::StrCat("bad duration \"", text,
                           "\"; use a positive number with a unit, e.g. "
                           "90s, 10m, 4h"))
        << text;
  }
  EXPECT_EQ(out, absl::Seconds(7));
}

TEST(YamlUtilTest, ReadDuration) {
  absl::Duration out;
  ASSERT_TRUE(YamlReadDuration("t.yaml", Field("a: 4h\n", "a"), &out).ok());
  EXPECT_EQ(out, absl::Hours(4));

  out = absl::Seconds(7);
  // The example of the inventory: the value's own line.
  const char* inventory =
      "defaults:\n  port: 7500\n  connect_timeout: banana\n";
  absl::StatusOr<YAML::Node> root = ParseYaml(inventory, "inventory.yaml");
  ASSERT_TRUE(root.ok());
  EXPECT_EQ(
      Message(YamlReadDuration("inventory.yaml",
                               (*root)["defaults"]["connect_timeout"], &out)),
      "inventory.yaml:3: bad duration \"banana\"; use a positive number "
      "with a unit, e.g. 90s, 10m, 4h");
  EXPECT_EQ(Message(YamlReadDuration("t.yaml", Field("\na: 0s\n", "a"), &out)),
            "t.yaml:2: bad duration \"0s\"; use a positive number with a "
            "unit, e.g. 90s, 10m, 4h");
  EXPECT_EQ(
      Message(YamlReadDuration("t.yaml", Field("\na: 10 years\n", "a"), &out)),
      "t.yaml:2: bad duration \"10 years\"; use a positive number with a "
      "unit, e.g. 90s, 10m, 4h");
  EXPECT_EQ(
      Message(YamlReadDuration("t.yaml", Field("\na: {s: 1}\n", "a"), &out)),
      "t.yaml:2: expected a duration");
  EXPECT_EQ(Message(YamlReadDuration("t.yaml", Field("\na: ~\n", "a"), &out)),
            "t.yaml:2: expected a duration");
  EXPECT_EQ(out, absl::Seconds(7));
}

TEST(YamlUtilTest, EmptyValuesAreRejected) {
  // `key:` with nothing after it is null, not an empty string. yaml-cpp marks
  // such a value where the parser found it empty: the next line.
  const YAML::Node empty = Field("a:\nb: 1\n", "a");
  std::string s;
  int i = 0;
  bool b = false;
  absl::Duration d;
  std::uint64_t n = 0;
  EXPECT_THAT(Message(YamlReadString("t.yaml", empty, &s)),
              HasSubstr("expected a string"));
  EXPECT_THAT(Message(YamlReadInt("t.yaml", empty, 0, 1, &i)),
              HasSubstr("expected an integer"));
  EXPECT_THAT(Message(YamlReadBool("t.yaml", empty, &b)),
              HasSubstr("expected true or false"));
  EXPECT_THAT(Message(YamlReadDuration("t.yaml", empty, &d)),
              HasSubstr("expected a duration"));
  EXPECT_THAT(Message(YamlReadBytes("t.yaml", empty, &n)),
              HasSubstr("expected a size"));
}

}  // namespace
}  // namespace labtrace
