#include "controller/report/provider_warning.h"

#include <algorithm>
#include <cmath>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "common/file_util.h"

namespace labtrace::controller {
namespace {

// "2.4 GiB": one decimal, as people say file sizes.
std::string ShortBytes(std::uint64_t bytes) {
  static constexpr const char* kUnits[] = {"B", "KiB", "MiB", "GiB", "TiB"};
  double v = static_cast<double>(bytes);
  int unit = 0;
  while (v >= 1024 && unit < 4) {
    v /= 1024;
    ++unit;
  }
  if (unit == 0) return HumanBytes(bytes);
  return absl::StrFormat("%.1f %s", v, kUnits[unit]);
}

}  // namespace

std::optional<std::string> ProviderWarning(const v1::TraceSummary& s) {
  if (s.file_size() < kProviderWarningMinFileBytes || s.record_bytes() == 0 ||
      s.top_providers().empty()) {
    return std::nullopt;
  }
  // top_providers is sorted by bytes, but do not rely on the sender.
  const v1::ProviderStat* top = &s.top_providers(0);
  for (const v1::ProviderStat& p : s.top_providers()) {
    if (p.bytes() > top->bytes()) top = &p;
  }
  const double share =
      static_cast<double>(top->bytes()) / static_cast<double>(s.record_bytes());
  if (share < kProviderWarningMinShare) return std::nullopt;
  const std::string& name = !top->name().empty()   ? top->name()
                            : !top->guid().empty() ? top->guid()
                                                   : top->key();
  const int percent =
      static_cast<int>(std::floor(std::min(share, 1.0) * 100.0));
  return absl::StrCat(name, ": ", percent, "% of ", ShortBytes(s.file_size()),
                      "; narrow the profile");
}

}  // namespace labtrace::controller
