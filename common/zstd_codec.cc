#include "common/zstd_codec.h"

#include <zstd.h>

#include "absl/strings/str_cat.h"

namespace labtrace::zstd {
namespace {

struct CCtxDeleter {
  void operator()(ZSTD_CCtx* c) const { ZSTD_freeCCtx(c); }
};
struct DCtxDeleter {
  void operator()(ZSTD_DCtx* d) const { ZSTD_freeDCtx(d); }
};

ZSTD_CCtx* ThreadCCtx() {
  thread_local std::unique_ptr<ZSTD_CCtx, CCtxDeleter> c(ZSTD_createCCtx());
  return c.get();
}

ZSTD_DCtx* ThreadDCtx() {
  thread_local std::unique_ptr<ZSTD_DCtx, DCtxDeleter> d(ZSTD_createDCtx());
  return d.get();
}

}  // namespace

bool CompressChunk(const char* data, std::size_t n, int level,
                   std::string* out) {
  ZSTD_CCtx* c = ThreadCCtx();
  if (c == nullptr || n == 0) return false;
  out->resize(ZSTD_compressBound(n));
  const std::size_t r =
      ZSTD_compressCCtx(c, out->data(), out->size(), data, n, level);
  if (ZSTD_isError(r) || r >= n) return false;
  out->resize(r);
  return true;
}

absl::Status DecompressChunk(absl::string_view frame, std::size_t raw_size,
                             std::string* out) {
  ZSTD_DCtx* d = ThreadDCtx();
  if (d == nullptr) return absl::ResourceExhaustedError("ZSTD_createDCtx failed");
  out->resize(raw_size);
  const std::size_t r =
      ZSTD_decompressDCtx(d, out->data(), out->size(), frame.data(), frame.size());
  if (ZSTD_isError(r)) {
    return absl::DataLossError(
        absl::StrCat("corrupt zstd chunk: ", ZSTD_getErrorName(r)));
  }
  if (r != raw_size) {
    return absl::DataLossError(absl::StrCat("a zstd chunk decoded to ", r,
                                            " bytes instead of ", raw_size));
  }
  return absl::OkStatus();
}

Stream::Stream(int level) : ctx_(ZSTD_createCCtx()) {
  if (ctx_ != nullptr) {
    ZSTD_CCtx_setParameter(static_cast<ZSTD_CCtx*>(ctx_),
                           ZSTD_c_compressionLevel, level);
  }
}

Stream::~Stream() { ZSTD_freeCCtx(static_cast<ZSTD_CCtx*>(ctx_)); }

absl::Status Stream::Add(const char* data, std::size_t n, std::string* out) {
  return Run(data, n, ZSTD_e_flush, out);
}

absl::Status Stream::End(std::string* out) {
  return Run(nullptr, 0, ZSTD_e_end, out);
}

absl::Status Stream::Run(const char* data, std::size_t n, int directive,
                         std::string* out) {
  out->clear();
  if (ctx_ == nullptr) return absl::ResourceExhaustedError("ZSTD_createCCtx failed");
  ZSTD_inBuffer in{data, n, 0};
  const std::size_t step = ZSTD_CStreamOutSize();
  for (;;) {
    const std::size_t had = out->size();
    out->resize(had + step);
    ZSTD_outBuffer o{out->data() + had, step, 0};
    const std::size_t left =
        ZSTD_compressStream2(static_cast<ZSTD_CCtx*>(ctx_), &o, &in,
                             static_cast<ZSTD_EndDirective>(directive));
    out->resize(had + o.pos);
    if (ZSTD_isError(left)) {
      return absl::InternalError(
          absl::StrCat("zstd compression failed: ", ZSTD_getErrorName(left)));
    }
    // Done when all input is taken and the flush (or end) is complete.
    if (in.pos == in.size && left == 0) return absl::OkStatus();
  }
}

}  // namespace labtrace::zstd
