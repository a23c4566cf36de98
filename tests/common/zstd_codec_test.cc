#include "common/zstd_codec.h"

#include <zstd.h>

#include <random>
#include <string>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/testing/test_util.h"

namespace labtrace {
namespace {

std::string Repetitive(std::size_t n) {
  std::string s;
  while (s.size() < n) s += "ETW buffer header, event, event, event; ";
  s.resize(n);
  return s;
}

std::string Random(std::size_t n) {
  std::mt19937 rng(42);
  std::string s(n, '\0');
  for (char& c : s) c = static_cast<char>(rng());
  return s;
}

TEST(ZstdCodecTest, ChunksRoundTripAndSayWhenTheyDoNotShrink) {
  const std::string raw = Repetitive(1 << 20);
  std::string packed, back;
  ASSERT_TRUE(zstd::CompressChunk(raw.data(), raw.size(), 1, &packed));
  EXPECT_LT(packed.size(), raw.size() / 20);
  ASSERT_TRUE(zstd::DecompressChunk(packed, raw.size(), &back).ok());
  EXPECT_EQ(back, raw);
  // Random bytes do not shrink: the caller sends them as they are.
  const std::string noise = Random(64 << 10);
  EXPECT_FALSE(zstd::CompressChunk(noise.data(), noise.size(), 1, &packed));
  EXPECT_FALSE(zstd::CompressChunk(raw.data(), 0, 1, &packed));
}

TEST(ZstdCodecTest, CorruptOrMislabelledChunksAreDataLoss) {
  const std::string raw = Repetitive(100000);
  std::string packed, back;
  ASSERT_TRUE(zstd::CompressChunk(raw.data(), raw.size(), 3, &packed));
  absl::Status s = zstd::DecompressChunk(packed, raw.size() - 1, &back);
  EXPECT_EQ(s.code(), absl::StatusCode::kDataLoss) << s;
  s = zstd::DecompressChunk(packed, raw.size() + 1, &back);
  EXPECT_EQ(s.code(), absl::StatusCode::kDataLoss) << s;
  std::string broken = packed;
  broken[broken.size() / 2] ^= 0x5a;
  broken.resize(broken.size() - 3);
  s = zstd::DecompressChunk(broken, raw.size(), &back);
  EXPECT_EQ(s.code(), absl::StatusCode::kDataLoss) << s;
  EXPECT_THAT(std::string(s.message()), ::testing::HasSubstr("zstd"));
}

TEST(ZstdCodecTest, StreamIsOneFrameOfAllPieces) {
  zstd::Stream stream(1);
  const std::string a = Repetitive(300000), b = Random(5000), c = Repetitive(7);
  std::string out, piece;
  for (const std::string* p : {&a, &b, &c}) {
    ASSERT_TRUE(stream.Add(p->data(), p->size(), &piece).ok());
    EXPECT_FALSE(piece.empty());  // Flushed: each piece can go out at once.
    out += piece;
  }
  ASSERT_TRUE(stream.End(&piece).ok());
  out += piece;
  const std::string all = a + b + c;
  std::string back(all.size(), '\0');
  const std::size_t n =
      ZSTD_decompress(back.data(), back.size(), out.data(), out.size());
  ASSERT_FALSE(ZSTD_isError(n)) << ZSTD_getErrorName(n);
  EXPECT_EQ(n, all.size());
  EXPECT_EQ(back, all);
}

}  // namespace
}  // namespace labtrace
