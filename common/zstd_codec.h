// zstd for artifact transfer: each chunk of a file is compressed on its own
// (one frame), so a chunk can be decoded, placed at its offset and verified
// without the chunks before it, and a download resumes anywhere. libzstd's
// contexts are reused per thread: no allocation per chunk.
//
//   std::string packed;
//   if (zstd::CompressChunk(data, n, /*level=*/1, &packed)) send(packed);
//   else send(data);  // Did not get smaller: send it as it is.
//   zstd::DecompressChunk(packed, raw_size, &out);  // Exactly raw_size bytes.
//
// A streaming compressor for one whole HTTP body (Content-Encoding: zstd).

#ifndef LABTRACE_COMMON_ZSTD_CODEC_H_
#define LABTRACE_COMMON_ZSTD_CODEC_H_

#include <cstddef>
#include <memory>
#include <string>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"

namespace labtrace::zstd {

// Compresses `n` bytes into *out (replaced). False when the result would
// not be smaller than the input (send the raw bytes then) or libzstd fails.
bool CompressChunk(const char* data, std::size_t n, int level,
                   std::string* out);

// Decodes one frame into *out, which must come out exactly `raw_size`
// bytes; DataLoss otherwise (a corrupt or truncated chunk).
absl::Status DecompressChunk(absl::string_view frame, std::size_t raw_size,
                             std::string* out);

// One zstd stream over many pieces (an HTTP body): Add() returns what is
// ready to send after each piece (flushed, so a slow file still streams),
// End() the stream's tail.
class Stream {
 public:
  explicit Stream(int level);
  ~Stream();
  Stream(const Stream&) = delete;
  Stream& operator=(const Stream&) = delete;
  absl::Status Add(const char* data, std::size_t n, std::string* out);
  absl::Status End(std::string* out);

 private:
  absl::Status Run(const char* data, std::size_t n, int directive,
                   std::string* out);
  void* ctx_;  // ZSTD_CCtx
};

}  // namespace labtrace::zstd

#endif  // LABTRACE_COMMON_ZSTD_CODEC_H_
