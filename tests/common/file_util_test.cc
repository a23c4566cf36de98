#include "common/file_util.h"

#include "gtest/gtest.h"
#include "tests/testing/test_util.h"

namespace labtrace {
namespace {

TEST(FileUtilTest, AtomicWriteReplacesAndLeavesNoTemp) {
  testing::TempDir dir;
  auto p = dir.path() / "journal.json";
  ASSERT_TRUE(WriteFileAtomically(p, "one").ok());
  ASSERT_TRUE(WriteFileAtomically(p, "two").ok());
  EXPECT_EQ(*ReadFile(p), "two");
  int files = 0;
  for (const auto& e : std::filesystem::directory_iterator(dir.path())) {
    (void)e;
    ++files;
  }
  EXPECT_EQ(files, 1);
}

TEST(FileUtilTest, AtomicWriteToMissingDirFails) {
  absl::Status s = WriteFileAtomically("/nonexistent-dir/x", "data");
  EXPECT_FALSE(s.ok());
  EXPECT_NE(s.message().find("/nonexistent-dir/x"), absl::string_view::npos);
}

TEST(FileUtilTest, Sha256KnownAnswers) {
  EXPECT_EQ(Sha256Hex(""),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  EXPECT_EQ(Sha256Hex("abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  testing::TempDir dir;
  auto p = dir.path() / "f";
  // Larger than the 1 MiB read block, to cover the loop.
  std::string big(3 * 1024 * 1024 + 17, 'q');
  testing::WriteTextFile(p, big);
  EXPECT_EQ(*Sha256File(p), Sha256Hex(big));
  EXPECT_EQ(Sha256File(dir.path() / "missing").status().code(),
            absl::StatusCode::kInternal);
}

TEST(FileUtilTest, FreeBytesAndSizes) {
  testing::TempDir dir;
  EXPECT_GT(*FreeBytes(dir.path()), 0u);
  testing::WriteTextFile(dir.path() / "f", "12345");
  EXPECT_EQ(*FileSize(dir.path() / "f"), 5u);
  EXPECT_FALSE(FileSize(dir.path() / "nope").ok());
}

TEST(FileUtilTest, HumanBytes) {
  EXPECT_EQ(HumanBytes(17), "17 B");
  EXPECT_EQ(HumanBytes(1536), "1.50 KiB");
  EXPECT_EQ(HumanBytes(320 * 1024), "320 KiB");
  EXPECT_EQ(HumanBytes(3ull << 30), "3.00 GiB");
}

}  // namespace
}  // namespace labtrace
