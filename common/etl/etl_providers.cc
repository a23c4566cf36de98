#include "common/etl/etl_providers.h"

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <iterator>

namespace labtrace::etl {
namespace {

// On-disk record layouts (little-endian): see etl_summary.h and
// ../shared/testdata/etl/README.md.
constexpr std::size_t kGuidOffset = 0x18;       // EVENT_HEADER.ProviderId,
                                                // EVENT_TRACE_HEADER.Guid.
constexpr std::size_t kEventHeaderSize = 0x50;  // EVENT_HEADER.
constexpr std::uint16_t kEventHeaderFlagExtendedInfo = 0x0001;
constexpr std::uint16_t kExtTypeProvTraits = 0x000C;
constexpr std::size_t kMaxNameBytes = 256;
constexpr int kMaxExtendedItems = 64;

// SystemTraceControlGuid: the NT Kernel Logger's control GUID.
constexpr const char kSystemTraceGuid[] =
    "9e814aad-3204-11d2-9a82-006008a86939";

std::uint16_t U16(const unsigned char* p) {
  return static_cast<std::uint16_t>(p[0] | (p[1] << 8));
}

enum class HeaderKind { kKernel, kEventHeader, kClassic, kUnknown };

HeaderKind KindOf(std::uint8_t header_type) {
  switch (header_type) {
    case 0x01:  // SYSTEM_TRACE_HEADER 32/64
    case 0x02:
    case 0x03:  // compact 32/64
    case 0x04:
    case 0x10:  // PERFINFO_TRACE_HEADER 32/64
    case 0x11:
      return HeaderKind::kKernel;
    case 0x12:  // EVENT_HEADER 32/64
    case 0x13:
      return HeaderKind::kEventHeader;
    case 0x0A:  // EVENT_TRACE_HEADER ("full") 32/64
    case 0x14:
    case 0x0B:  // EVENT_INSTANCE_GUID_HEADER 32/64
    case 0x15:
      return HeaderKind::kClassic;
    default:
      return HeaderKind::kUnknown;
  }
}

// Kernel event groups: the high byte of HookId (EVENT_TRACE_GROUP_* in the
// phnt copy of ntwmi.h), with the event class GUIDs Microsoft documents
// ("NT Kernel Logger Constants" and the MOF class pages: EventTraceEvent,
// StackWalk, ...). Undocumented classes get SystemTraceControlGuid.
struct KernelGroup {
  std::uint8_t group;
  const char* name;  // "Kernel/<MOF class>".
  const char* guid;  // nullptr: kSystemTraceGuid.
};
constexpr KernelGroup kKernelGroups[] = {
    {0x00, "Kernel/EventTrace", "68fdd900-4a3e-11d1-84f4-0000f80464e3"},
    {0x01, "Kernel/DiskIo", "3d6fa8d4-fe05-11d0-9dda-00c04fd7ba7c"},
    {0x02, "Kernel/PageFault", "3d6fa8d3-fe05-11d0-9dda-00c04fd7ba7c"},
    {0x03, "Kernel/Process", "3d6fa8d0-fe05-11d0-9dda-00c04fd7ba7c"},
    {0x04, "Kernel/FileIo", "90cbdc39-4a3e-11d1-84f4-0000f80464e3"},
    {0x05, "Kernel/Thread", "3d6fa8d1-fe05-11d0-9dda-00c04fd7ba7c"},
    {0x06, "Kernel/TcpIp", "9a280ac0-c8e0-11d1-84e2-00c04fb998a2"},
    {0x07, "Kernel/Job", nullptr},
    {0x08, "Kernel/UdpIp", "bf3a50c5-a9c9-4988-a005-2df0b7c80f80"},
    {0x09, "Kernel/Registry", "ae53722e-c863-11d2-8659-00c04fa321a1"},
    {0x0A, "Kernel/DbgPrint", nullptr},
    {0x0B, "Kernel/SystemConfig", "01853a65-418f-4f36-aefc-dc0f1d2fd235"},
    {0x0D, "Kernel/Wnf", nullptr},
    {0x0E, "Kernel/Pool", nullptr},
    {0x0F, "Kernel/PerfInfo", "ce1dbfb4-137e-4da6-87b0-3f59aa102cbc"},
    {0x10, "Kernel/Heap", nullptr},
    {0x11, "Kernel/Object", nullptr},
    {0x12, "Kernel/Power", nullptr},
    {0x13, "Kernel/Modbound", nullptr},
    {0x14, "Kernel/Image", "2cb15d1d-5fc1-11d2-abe1-00a0c911f518"},
    {0x15, "Kernel/Dpc", nullptr},
    {0x16, "Kernel/CacheManager", nullptr},
    {0x17, "Kernel/CritSec", nullptr},
    {0x18, "Kernel/StackWalk", "def2fe46-7bd6-4b80-bd94-f57fe20d0ce3"},
    {0x19, "Kernel/Ums", nullptr},
    {0x1A, "Kernel/ALPC", "45d8cccd-539f-4b72-a8b7-5c683142609a"},
    {0x1B, "Kernel/SplitIo", "d837ca92-12b9-44a5-ad6a-3a65b3578aa8"},
    {0x1C, "Kernel/ThreadPool", nullptr},
    {0x1D, "Kernel/Hypervisor", nullptr},
    {0x1E, "Kernel/HypervisorX", nullptr},
};

const KernelGroup* FindGroup(std::uint8_t group) {
  for (const KernelGroup& g : kKernelGroups) {
    if (g.group == group) return &g;
  }
  return nullptr;
}

// Well-known providers: names and GUIDs as `logman query providers` and
// `wpr -providers` list them and Microsoft's documentation gives them
// (.NET "CLR ETW providers", PowerShell, Kernel-* manifests), plus the
// synthetic providers that xperf/WPR and the relogger add to merged files
// (KernelTraceControl, EventMetadata, WinSAT). Sorted by GUID.
struct KnownProvider {
  const char* guid;
  const char* name;
};
constexpr KnownProvider kKnownProviders[] = {
    {"0a002690-3839-4e3a-b3b6-96d8df868d99", "Microsoft-Antimalware-Engine"},
    {"0f67e49f-fe51-4e9f-b490-6f2948cc6027",
     "Microsoft-Windows-Kernel-Processor-Power"},
    {"1418ef04-b0b4-4623-bf7e-d74ab47bbdaa", "Microsoft-Windows-WMI-Activity"},
    {"1c95126e-7eea-49a9-a3fe-a378b03ddb4d", "Microsoft-Windows-DNS-Client"},
    {"22fb2cd6-0e7b-422b-a0c7-2fad1fd0e716",
     "Microsoft-Windows-Kernel-Process"},
    {"2f07e2ee-15db-40f1-90ef-9d7ba282188a", "Microsoft-Windows-TCPIP"},
    {"331c3b3a-2005-44c2-ac5e-77220c37d6b4", "Microsoft-Windows-Kernel-Power"},
    {"43d1a55c-76d6-4f7e-995c-64c711e5cafe", "Microsoft-Windows-WinINet"},
    {"5322d61a-9efa-4bc3-a3f9-14be95c144f8",
     "Microsoft-Windows-Kernel-Prefetch"},
    {"54849625-5478-4994-a5ba-3e3b0328c30d",
     "Microsoft-Windows-Security-Auditing"},
    {"5770385f-c22a-43e0-bf4c-06f5698ffbd9", "Microsoft-Windows-Sysmon"},
    {"6a399ae0-4bc6-4de9-870b-3657f8947e7e", "Kernel/Lost_Event"},
    {"6ad52b32-d609-4be9-ae07-ce8dae937e39", "Microsoft-Windows-RPC"},
    {"70eb4f03-c1de-4f73-a051-33d13d5413bd",
     "Microsoft-Windows-Kernel-Registry"},
    {"763fd754-7086-4dfe-95eb-c01a46faf4ca",
     "Microsoft-Windows-DotNETRuntimePrivate"},
    {"7dd42a49-5329-4832-8dfd-43d979153a88",
     "Microsoft-Windows-Kernel-Network"},
    {"802ec45a-1e99-4b83-9920-87c98277ba9d", "Microsoft-Windows-DxgKrnl"},
    {"8c416c79-d49b-4f01-a467-e56d3aa8234c", "Microsoft-Windows-Win32k"},
    {"9b79ee91-b5fd-41c0-a243-4248e266e9d0",
     "KernelTraceControl/SystemConfigEx"},
    {"9c205a39-1250-487d-abd7-e831c6290539", "Microsoft-Windows-Kernel-PnP"},
    {"9e814aad-3204-11d2-9a82-006008a86939", "Kernel/SystemTrace"},
    {"a0c1853b-5c40-4b15-8766-3cf1c58f985a", "Microsoft-Windows-PowerShell"},
    {"a669021c-c450-4609-a035-5af59af4df18",
     "Microsoft-Windows-DotNETRuntimeRundown"},
    {"a68ca8b7-004f-d7b6-a698-07e2de0f1f5d",
     "Microsoft-Windows-Kernel-General"},
    {"b3e675d7-2554-4f18-830b-2762732560de", "KernelTraceControl/ImageId"},
    {"b675ec37-bdb6-4648-bc92-f3fdc74d3ca2",
     "Microsoft-Windows-Kernel-EventTracing"},
    {"bbccf6c1-6cd1-48c4-80ff-839482e37671", "EventMetadata"},
    {"c7bde69a-e1e0-4177-b6ef-283ad1525271", "Microsoft-Windows-Kernel-Disk"},
    {"d1d93ef7-e1f2-4f45-9943-03d245fe6c00", "Microsoft-Windows-Kernel-Memory"},
    {"e02a841c-75a3-4fa7-afc8-ae09cf9b7f23",
     "Microsoft-Windows-Kernel-Audit-API-Calls"},
    {"e13c0d23-ccbc-4e12-931b-d9cc2eee27e4", "Microsoft-Windows-DotNETRuntime"},
    {"e53c6823-7bb8-44bb-90dc-3f86090d48a6", "Microsoft-Windows-Winsock-AFD"},
    {"ed54dff8-c409-4cf6-bf83-05e1e61a09c4", "WinSATAssessment"},
    {"edd08927-9cc4-4e65-b970-c2560fb5c289", "Microsoft-Windows-Kernel-File"},
    {"f4e1897c-bb5d-5668-f1d8-040f4d8dd344",
     "Microsoft-Windows-Threat-Intelligence"},
};

// The provider name in an EVENT_HEADER record's PROV_TRAITS extended item,
// or "". On disk each item is {u16 item size (8-aligned, header included),
// u16 ExtType, u16 Linkage (bit 0: another item follows), u16 DataSize},
// then the data; the traits data is {u16 size, NUL-terminated UTF-8 name,
// traits}. Non-printable and non-ASCII bytes become '?' (names are ASCII
// in practice, and the result must be valid UTF-8 for protobuf).
std::string TraceLoggingName(const unsigned char* rec, std::size_t size) {
  if (size < kEventHeaderSize ||
      !(U16(rec + 4) & kEventHeaderFlagExtendedInfo)) {
    return "";
  }
  std::size_t at = kEventHeaderSize;
  for (int i = 0; i < kMaxExtendedItems; ++i) {
    if (at + 8 > size) return "";
    const std::size_t item_size = U16(rec + at);
    const std::uint16_t ext_type = U16(rec + at + 2);
    const std::uint16_t linkage = U16(rec + at + 4);
    const std::size_t data_size = U16(rec + at + 6);
    if (item_size < 8 || item_size > size - at || 8 + data_size > item_size) {
      return "";
    }
    if (ext_type == kExtTypeProvTraits && data_size >= 3) {
      const unsigned char* data = rec + at + 8;
      const std::size_t end = std::min<std::size_t>(data_size, U16(data));
      std::string name;
      for (std::size_t j = 2; j < end && data[j] != 0; ++j) {
        if (name.size() == kMaxNameBytes) break;
        name += data[j] >= 0x20 && data[j] < 0x7F ? static_cast<char>(data[j])
                                                  : '?';
      }
      if (!name.empty()) return name;
    }
    if (!(linkage & 1)) return "";
    at += item_size;
  }
  return "";
}

}  // namespace

std::string FormatGuid(const unsigned char* g) {
  char buf[40];
  std::snprintf(
      buf, sizeof(buf),
      "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x",
      g[3], g[2], g[1], g[0], g[5], g[4], g[7], g[6], g[8], g[9], g[10], g[11],
      g[12], g[13], g[14], g[15]);
  return buf;
}

const char* WellKnownProviderName(std::string_view guid) {
  const auto* end = std::end(kKnownProviders);
  const auto* it =
      std::lower_bound(std::begin(kKnownProviders), end, guid,
                       [](const KnownProvider& p, std::string_view g) {
                         return std::string_view(p.guid) < g;
                       });
  if (it != end && std::string_view(it->guid) == guid) return it->name;
  // Kernel event classes, when classic events carry them by GUID.
  for (const KernelGroup& g : kKernelGroups) {
    if (g.guid != nullptr && std::string_view(g.guid) == guid) return g.name;
  }
  return nullptr;
}

std::string KernelGroupName(std::uint8_t group) {
  if (const KernelGroup* g = FindGroup(group)) return g->name;
  char buf[32];
  std::snprintf(buf, sizeof(buf), "Kernel/group 0x%02x", group);
  return buf;
}

const char* KernelGroupGuid(std::uint8_t group) {
  const KernelGroup* g = FindGroup(group);
  return g != nullptr && g->guid != nullptr ? g->guid : kSystemTraceGuid;
}

std::size_t ProviderTally::KeyHash::operator()(const Key& k) const {
  std::uint64_t a = 0;
  std::uint64_t b = 0;
  std::memcpy(&a, k.guid.data(), 8);
  std::memcpy(&b, k.guid.data() + 8, 8);
  const std::uint64_t h = (a * 0x9E3779B97F4A7C15ull) ^
                          (b + 0x632BE59BD9B4E019ull + (a >> 7)) ^
                          static_cast<std::uint64_t>(k.kernel);
  return static_cast<std::size_t>(h ^ (h >> 29));
}

ProviderTally::ProviderTally(std::size_t max_providers)
    : max_providers_(max_providers) {}

ProviderTally::Entry* ProviderTally::Find(const Key& key, bool event_header) {
  if (last_ < entries_.size() && entries_[last_].key == key)
    return &entries_[last_];
  auto it = index_.find(key);
  if (it != index_.end()) {
    last_ = it->second;
    return &entries_[last_];
  }
  if (entries_.size() >= max_providers_) return &other_;
  entries_.push_back(Entry{key, event_header, 0, 0, {}});
  last_ = entries_.size() - 1;
  index_.emplace(key, last_);
  return &entries_[last_];
}

void ProviderTally::OnRecord(const unsigned char* rec, std::size_t size,
                             std::size_t stored) {
  if (size < 4) return;  // SummarizeEtl never hands these out.
  ++events_;
  bytes_ += stored;
  Key key;
  const HeaderKind kind = KindOf(rec[2]);
  Entry* e = nullptr;
  if (kind == HeaderKind::kKernel) {
    key.kernel = true;
    // HookId at +6: event type (low byte), group (high byte). Records
    // shorter than 8 bytes have no group; count them under group 0.
    key.guid[0] = size >= 8 ? rec[7] : 0;
    e = Find(key, false);
  } else {
    // GUID-keyed. Records too short to hold one: the zero GUID.
    if (size >= kGuidOffset + 16)
      std::memcpy(key.guid.data(), rec + kGuidOffset, 16);
    const bool event_header = kind == HeaderKind::kEventHeader;
    e = Find(key, event_header);
    if (event_header && e != &other_ && e->tracelogging_name.empty()) {
      e->tracelogging_name = TraceLoggingName(rec, size);
    }
  }
  ++e->events;
  e->bytes += stored;
}

std::vector<ProviderStat> ProviderTally::Results() const {
  std::vector<ProviderStat> out;
  out.reserve(entries_.size() + 1);
  for (const Entry& e : entries_) {
    ProviderStat p;
    p.events = e.events;
    p.bytes = e.bytes;
    if (e.key.kernel) {
      const std::uint8_t group = e.key.guid[0];
      char key[16];
      std::snprintf(key, sizeof(key), "kernel:0x%02x", group);
      p.key = key;
      p.guid = KernelGroupGuid(group);
      p.name = KernelGroupName(group);
      p.source = "kernel-group";
    } else {
      p.key = FormatGuid(e.key.guid.data());
      p.guid = p.key;
      const char* known = WellKnownProviderName(p.guid);
      if (!e.tracelogging_name.empty()) {
        p.name = e.tracelogging_name;
        p.source = "tracelogging";
      } else if (known != nullptr) {
        p.name = known;
        p.source = e.event_header ? "manifest" : "mof";
      } else {
        p.source = "unknown";
      }
    }
    out.push_back(std::move(p));
  }
  if (other_.events > 0) {
    ProviderStat p;
    p.key = "other";
    p.name = "other providers";
    p.source = "other";
    p.events = other_.events;
    p.bytes = other_.bytes;
    out.push_back(std::move(p));
  }
  std::sort(out.begin(), out.end(),
            [](const ProviderStat& a, const ProviderStat& b) {
              if (a.bytes != b.bytes) return a.bytes > b.bytes;
              return a.key < b.key;
            });
  return out;
}

}  // namespace labtrace::etl
