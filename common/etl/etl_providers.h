// Which providers fill an ETL file: events and bytes per provider, tallied
// in the same single pass as the EtlSummary ("Why is this ETL 2.5 GB?").
//
// Keys, per record header type:
//   - EVENT_HEADER (manifest, EventSource, TraceLogging events): the
//     ProviderId GUID. If an event carries the provider's TraceLogging name
//     (extended item EVENT_HEADER_EXT_TYPE_PROV_TRAITS), that is its name.
//   - Classic EVENT_TRACE_HEADER and instance headers: the GUID they carry.
//   - Kernel SYSTEM_TRACE_HEADER / compact / PERFINFO headers: the event
//     group (high byte of the HookId), named "Kernel/Process",
//     "Kernel/DiskIo", ... with the documented NT Kernel Logger class GUID.
// Names come from TraceLogging traits, else from a built-in table of
// well-known providers (public Microsoft documentation), else none.
// Bytes are the space each record takes in its buffer (header included,
// rounded up to 8); compressed buffers count their decompressed records.
//
// Standard library only, like etl_summary (the fuzz target builds it with
// clang alone). Memory is bounded: at most `max_providers` distinct
// providers are kept; records of any further provider count as "other".
// The independent check is tests/tools/etl_providers.py.
//
//   ProviderTally tally;
//   EtlSummary s = SummarizeEtl(source, &tally);
//   for (const ProviderStat& p : tally.Results()) ...

#ifndef LABTRACE_COMMON_ETL_ETL_PROVIDERS_H_
#define LABTRACE_COMMON_ETL_ETL_PROVIDERS_H_

#include <array>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "common/etl/etl_summary.h"

namespace labtrace::etl {

// One provider's share of a file.
struct ProviderStat {
  // Stable identity: the GUID ("0b7a6f19-47c4-454e-8c5c-e868d637e4d8"),
  // "kernel:0x05" for a kernel event group, or "other".
  std::string key;
  // Lowercase GUID without braces; for kernel groups the class GUID (or
  // the NT Kernel Logger's control GUID); empty for "other".
  std::string guid;
  // Display name; empty when unknown (show the GUID).
  std::string name;
  // Where the name came from: "tracelogging" (the events' provider
  // traits), "kernel-group", "manifest" (table; EVENT_HEADER events),
  // "mof" (table; classic events), "unknown", or "other".
  std::string source;
  std::uint64_t events = 0;
  std::uint64_t bytes = 0;
};

// "0b7a6f19-47c4-454e-8c5c-e868d637e4d8" from 16 bytes in GUID memory
// order (Data1..3 little-endian).
std::string FormatGuid(const unsigned char* guid_bytes);

// The well-known name of a provider or MOF class GUID (lowercase, no
// braces), or nullptr.
const char* WellKnownProviderName(std::string_view guid);

// "Kernel/Image" for group 0x14; "Kernel/group 0x2f" if undocumented.
std::string KernelGroupName(std::uint8_t group);
// The group's event class GUID, else SystemTraceControlGuid.
const char* KernelGroupGuid(std::uint8_t group);

class ProviderTally final : public RecordSink {
 public:
  static constexpr std::size_t kDefaultMaxProviders = 4096;

  explicit ProviderTally(std::size_t max_providers = kDefaultMaxProviders);
  ProviderTally(const ProviderTally&) = delete;
  ProviderTally& operator=(const ProviderTally&) = delete;

  void OnRecord(const unsigned char* record, std::size_t size,
                std::size_t stored) override;

  // Every provider (and "other", if the cap was reached), by bytes
  // descending, then by key.
  std::vector<ProviderStat> Results() const;

  std::uint64_t events() const { return events_; }
  std::uint64_t bytes() const { return bytes_; }
  // True if some records were counted as "other".
  bool capped() const { return other_.events > 0; }

 private:
  // A GUID, or a kernel group (kernel = true, group in guid[0]).
  struct Key {
    std::array<unsigned char, 16> guid{};
    bool kernel = false;
    bool operator==(const Key& o) const {
      return kernel == o.kernel && guid == o.guid;
    }
  };
  struct KeyHash {
    std::size_t operator()(const Key& k) const;
  };
  struct Entry {
    Key key;
    bool event_header = false;  // First record had an EVENT_HEADER.
    std::uint64_t events = 0;
    std::uint64_t bytes = 0;
    std::string tracelogging_name;
  };

  Entry* Find(const Key& key, bool event_header);

  const std::size_t max_providers_;
  std::vector<Entry> entries_;
  std::unordered_map<Key, std::size_t, KeyHash> index_;
  Entry other_;
  std::size_t last_ = 0;  // entries_ index of the previous record's entry.
  std::uint64_t events_ = 0;
  std::uint64_t bytes_ = 0;
};

}  // namespace labtrace::etl

#endif  // LABTRACE_COMMON_ETL_ETL_PROVIDERS_H_
