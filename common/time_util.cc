#include "common/time_util.h"

namespace labtrace {

std::string FileStamp(absl::Time t) {
  return absl::FormatTime("%Y%m%d_%H%M%S", t, absl::UTCTimeZone());
}

std::string Rfc3339(absl::Time t) {
  return absl::FormatTime("%Y-%m-%dT%H:%M:%E3SZ", t, absl::UTCTimeZone());
}

std::string Rfc3339Micros(absl::Time t) {
  return absl::FormatTime("%Y-%m-%dT%H:%M:%E6SZ", t, absl::UTCTimeZone());
}

std::string HumanDuration(absl::Duration d) {
  // absl's format is already compact ("1h2m3.5s"); keep it readable by
  // dropping precision nobody reads.
  if (d >= absl::Minutes(1)) {
    d = absl::Trunc(d, absl::Seconds(1));
  } else if (d >= absl::Seconds(1)) {
    d = absl::Trunc(d, absl::Milliseconds(100));
  } else {
    d = absl::Trunc(d, absl::Milliseconds(1));
  }
  return absl::FormatDuration(d);
}

}  // namespace labtrace
