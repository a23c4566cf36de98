#include "agent/store/artifact_store.h"

#include <thread>

#include "common/file_util.h"
#include "gtest/gtest.h"
#include "tests/testing/test_util.h"

namespace labtrace::agent {
namespace {

v1::Artifact Meta(const std::string& name, std::int64_t start_unix) {
  v1::Artifact a;
  a.set_session_name(name);
  a.set_run_id("run1");
  a.mutable_start_time()->set_seconds(start_unix);
  a.mutable_stop_time()->set_seconds(start_unix + 5);
  return a;
}

class ArtifactStoreTest : public ::testing::Test {
 protected:
  void SetUp() override { ASSERT_TRUE(store_.Load().ok()); }

  std::filesystem::path MakeFile(const std::string& contents) {
    auto dir = store_.CreateWorkDir("w");
    EXPECT_TRUE(dir.ok());
    auto p = *dir / "out.etl";
    testing::WriteTextFile(p, contents);
    return p;
  }

  testing::TempDir dir_;
  ArtifactStore store_{dir_.path()};
};

// 2026-11-22 01:42:05 UTC
constexpr std::int64_t kT = 1795311725;

TEST_F(ArtifactStoreTest, NamesFromSessionAndStartTimeWithCollisions) {
  auto a = store_.Add(MakeFile("one"), ".etl", Meta("unit_tests", kT));
  ASSERT_TRUE(a.ok()) << a.status();
  EXPECT_EQ(a->file_name(), "unit_tests_20261122_014205.etl");
  EXPECT_EQ(a->id(), "unit_tests_20261122_014205.etl");
  // Another kind of file of the same operation at the same second.
  auto log = store_.Add(MakeFile("log"), ".log", Meta("unit_tests", kT));
  ASSERT_TRUE(log.ok());
  EXPECT_EQ(log->id(), "unit_tests_20261122_014205.log");
  EXPECT_EQ(a->size_bytes(), 3u);
  EXPECT_EQ(a->sha256(), Sha256Hex("one"));
  auto b = store_.Add(MakeFile("two"), ".etl", Meta("unit_tests", kT));
  ASSERT_TRUE(b.ok());
  EXPECT_EQ(b->file_name(), "unit_tests_20261122_014205_2.etl");
  auto c = store_.Add(MakeFile("three"), ".etl", Meta("unit_tests", kT));
  EXPECT_EQ(c->file_name(), "unit_tests_20261122_014205_3.etl");
  EXPECT_TRUE(std::filesystem::exists(store_.artifacts_dir() / b->file_name()));
  EXPECT_EQ(testing::ReadTextFile(*store_.PathOf(b->id())), "two");
}

TEST_F(ArtifactStoreTest, ConcurrentAddsGetDistinctNames) {
  std::vector<std::filesystem::path> files;
  for (int i = 0; i < 8; ++i)
    files.push_back(MakeFile("x" + std::to_string(i)));
  std::vector<std::thread> threads;
  std::vector<std::string> ids(8);
  for (int i = 0; i < 8; ++i) {
    threads.emplace_back([&, i] {
      auto a = store_.Add(files[i], ".etl", Meta("same", kT));
      if (a.ok()) ids[i] = a->id();
    });
  }
  for (auto& t : threads) t.join();
  std::set<std::string> unique(ids.begin(), ids.end());
  EXPECT_EQ(unique.size(), 8u);
  EXPECT_EQ(unique.count(""), 0u);
  EXPECT_EQ(store_.count(), 8);
}

TEST_F(ArtifactStoreTest, ReloadFindsArtifactsAndIgnoresIncompleteFiles) {
  auto a = store_.Add(MakeFile("payload"), ".perf.data", Meta("sched", kT));
  ASSERT_TRUE(a.ok());
  // A file without metadata (agent died between rename and metadata write)
  // and a leftover work dir.
  testing::WriteTextFile(store_.artifacts_dir() / "orphan_20260101_000000.etl",
                         "x");
  auto work = store_.CreateWorkDir("leftover");
  ASSERT_TRUE(work.ok());

  ArtifactStore reloaded(dir_.path());
  ASSERT_TRUE(reloaded.Load().ok());
  EXPECT_EQ(reloaded.count(), 1);
  auto got = reloaded.Get(a->id());
  ASSERT_TRUE(got.ok());
  EXPECT_EQ(got->sha256(), a->sha256());
  EXPECT_EQ(got->run_id(), "run1");
  // Work dirs are left for recovery (SessionManager::Recover salvages what
  // they hold), which then cleans them.
  EXPECT_TRUE(std::filesystem::exists(*work));
  reloaded.CleanWorkDirs();
  EXPECT_FALSE(std::filesystem::exists(*work));
  // The orphan still blocks its name: a new artifact never overwrites it.
  auto b = reloaded.Add(MakeFile("new"), ".etl", [] {
    v1::Artifact m;
    m.set_session_name("orphan");
    m.mutable_start_time()->set_seconds(1767225600);  // 2026-01-01 00:00:00
    return m;
  }());
  ASSERT_TRUE(b.ok());
  EXPECT_EQ(b->file_name(), "orphan_20260101_000000_2.etl");
}

TEST_F(ArtifactStoreTest, ListFiltersAndOrdersNewestFirst) {
  store_.Add(MakeFile("1"), ".etl", Meta("a", kT)).IgnoreError();
  store_.Add(MakeFile("2"), ".etl", Meta("b", kT + 60)).IgnoreError();
  auto other = Meta("a", kT + 120);
  other.set_run_id("run2");
  store_.Add(MakeFile("3"), ".etl", other).IgnoreError();
  auto all = store_.List("", "");
  ASSERT_EQ(all.size(), 3u);
  EXPECT_EQ(all[0].run_id(), "run2");
  EXPECT_EQ(store_.List("run1", "").size(), 2u);
  EXPECT_EQ(store_.List("", "a").size(), 2u);
  EXPECT_EQ(store_.List("run2", "b").size(), 0u);
}

TEST_F(ArtifactStoreTest, DeleteAndUnknownIds) {
  auto a = store_.Add(MakeFile("12345"), ".etl", Meta("d", kT));
  ASSERT_TRUE(a.ok());
  auto freed = store_.Delete(a->id());
  ASSERT_TRUE(freed.ok());
  EXPECT_EQ(*freed, 5u);
  EXPECT_FALSE(
      std::filesystem::exists(store_.artifacts_dir() / a->file_name()));
  EXPECT_EQ(store_.Delete(a->id()).status().code(),
            absl::StatusCode::kNotFound);
  for (const char* id :
       {"../../etc/passwd", "", "x/../y", "..%2F..%2Fetc%2Fpasswd"}) {
    EXPECT_EQ(store_.Get(id).status().code(), absl::StatusCode::kNotFound)
        << id;
    EXPECT_EQ(store_.PathOf(id).status().code(), absl::StatusCode::kNotFound)
        << id;
  }
}

}  // namespace
}  // namespace labtrace::agent
