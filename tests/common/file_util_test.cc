#include "common/file_util.h"

#include <atomic>
#include <thread>
#include <vector>

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
            absl::StatusCode::kNotFound);
}

TEST(FileUtilTest, FreeBytesAndSizes) {
  testing::TempDir dir;
  EXPECT_GT(*FreeBytes(dir.path()), 0u);
  testing::WriteTextFile(dir.path() / "f", "12345");
  EXPECT_EQ(*FileSize(dir.path() / "f"), 5u);
  EXPECT_FALSE(FileSize(dir.path() / "nope").ok());
}

TEST(FileUtilTest, Utf8PathsWithSpacesAndNonAscii) {
  testing::TempDir dir;
  // "lab data üé 日志": spaces, Latin-1 and CJK characters.
  const std::string dir_name = "lab data \xc3\xbc\xc3\xa9 \xe6\x97\xa5\xe5\xbf\x97";
  const std::string file_name = "trace \xc3\xa9.etl";
  const auto d = dir.path() / PathFromUtf8(dir_name);
  ASSERT_TRUE(EnsureDirectory(d).ok());
  const auto f = d / PathFromUtf8(file_name);
  ASSERT_TRUE(WriteFileAtomically(f, "payload").ok());
  EXPECT_EQ(*ReadFile(f), "payload");
  EXPECT_EQ(*FileSize(f), 7u);
  EXPECT_EQ(*Sha256File(f), Sha256Hex("payload"));
  EXPECT_GT(*FreeBytes(d), 0u);
  // What the directory lists comes back as the same UTF-8.
  bool listed = false;
  for (const auto& e : std::filesystem::directory_iterator(d)) {
    listed = listed || PathToUtf8(e.path().filename()) == file_name;
  }
  EXPECT_TRUE(listed);
  EXPECT_EQ(PathToUtf8(PathFromUtf8(dir_name)), dir_name);
  ASSERT_TRUE(CommitFile(f, d / PathFromUtf8("moved \xc3\xbc.etl")).ok());
  EXPECT_EQ(*ReadFile(d / PathFromUtf8("moved \xc3\xbc.etl")), "payload");
  // Errors name the path in UTF-8.
  absl::Status s = WriteFileAtomically(d / "no dir" / "x", "data");
  EXPECT_NE(s.message().find(dir_name), absl::string_view::npos) << s;
}

TEST(FileUtilTest, PathsLongerThan260Characters) {
  testing::TempDir dir;
  std::filesystem::path d = dir.path();
  for (int i = 0; i < 8; ++i) d /= std::string(40, static_cast<char>('a' + i));
  ASSERT_GT(PathToUtf8(d).size(), 330u);
  ASSERT_TRUE(EnsureDirectory(d).ok());
  const auto f = d / "journal.json";
  ASSERT_TRUE(WriteFileAtomically(f, "long").ok());
  EXPECT_EQ(*ReadFile(f), "long");
  EXPECT_EQ(*Sha256File(f), Sha256Hex("long"));
  EXPECT_EQ(*FileSize(f), 4u);
  EXPECT_GT(*FreeBytes(d), 0u);
  ASSERT_TRUE(CommitFile(f, d / "committed.json").ok());
  EXPECT_EQ(*ReadFile(d / "committed.json"), "long");
}

TEST(FileUtilTest, ConcurrentAtomicWritesOfOneFile) {
  // Temp names are unique per call, so threads never write into each
  // other's temp file; the result is always one whole version.
  testing::TempDir dir;
  const auto p = dir.path() / "journal.json";
  std::vector<std::thread> threads;
  std::atomic<int> failures{0};
  for (int t = 0; t < 8; ++t) {
    threads.emplace_back([&, t] {
      const std::string body(1000 + t, static_cast<char>('A' + t));
      for (int i = 0; i < 25; ++i) {
        if (!WriteFileAtomically(p, body).ok()) ++failures;
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(failures.load(), 0);
  const std::string last = *ReadFile(p);
  ASSERT_GE(last.size(), 1000u);
  EXPECT_EQ(last, std::string(last.size(), last[0]));
  int files = 0;
  for (const auto& e : std::filesystem::directory_iterator(dir.path())) {
    (void)e;
    ++files;
  }
  EXPECT_EQ(files, 1);  // No temp file left behind.
}

TEST(FileUtilTest, HumanBytes) {
  EXPECT_EQ(HumanBytes(17), "17 B");
  EXPECT_EQ(HumanBytes(1536), "1.50 KiB");
  EXPECT_EQ(HumanBytes(320 * 1024), "320 KiB");
  EXPECT_EQ(HumanBytes(3ull << 30), "3.00 GiB");
}

}  // namespace
}  // namespace labtrace
