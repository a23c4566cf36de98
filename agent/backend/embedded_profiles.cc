#include "agent/backend/embedded_profiles.h"

#include "common/file_util.h"
#include "common/status_macros.h"

namespace labtrace::agent {

absl::string_view EmbeddedWprpText() {
  // WPR profile schema: https://learn.microsoft.com/windows-hardware/test/wpt/
  // (WPRControlProfiles). Profile Ids are Name.DetailLevel.LoggingMode.
  return R"wprp(<?xml version="1.0" encoding="utf-8"?>
<!-- labtrace's embedded WPR profile: written by labtrace-agent at start. -->
<WindowsPerformanceRecorder Version="1.0" Author="labtrace" Team="labtrace"
    Comments="CPU samples with stacks, context switches, processes, images, disk and file I/O"
    Company="labtrace" Copyright="labtrace" Tag="labtrace">
  <Profiles>
    <SystemCollector Id="SystemCollector_Labtrace" Name="labtrace System Collector">
      <BufferSize Value="1024"/>
      <Buffers Value="256"/>
    </SystemCollector>
    <SystemProvider Id="SystemProvider_Labtrace">
      <Keywords>
        <Keyword Value="ProcessThread"/>
        <Keyword Value="Loader"/>
        <Keyword Value="SampledProfile"/>
        <Keyword Value="CSwitch"/>
        <Keyword Value="ReadyThread"/>
        <Keyword Value="DiskIO"/>
        <Keyword Value="FileIOInit"/>
        <Keyword Value="HardFaults"/>
      </Keywords>
      <Stacks>
        <Stack Value="SampledProfile"/>
        <Stack Value="CSwitch"/>
        <Stack Value="ReadyThread"/>
      </Stacks>
    </SystemProvider>
    <Profile Id="Labtrace.Verbose.File" Name="Labtrace" Description="labtrace default (file)"
        LoggingMode="File" DetailLevel="Verbose">
      <Collectors>
        <SystemCollectorId Value="SystemCollector_Labtrace">
          <SystemProviderId Value="SystemProvider_Labtrace"/>
        </SystemCollectorId>
      </Collectors>
    </Profile>
    <Profile Id="Labtrace.Verbose.Memory" Name="Labtrace" Description="labtrace default (memory ring)"
        LoggingMode="Memory" DetailLevel="Verbose">
      <Collectors>
        <SystemCollectorId Value="SystemCollector_Labtrace">
          <SystemProviderId Value="SystemProvider_Labtrace"/>
        </SystemCollectorId>
      </Collectors>
    </Profile>
  </Profiles>
</WindowsPerformanceRecorder>
)wprp";
}

absl::Status WriteEmbeddedProfiles(const std::filesystem::path& dir) {
  LABTRACE_RETURN_IF_ERROR(EnsureDirectory(dir));
  return WriteFileAtomically(dir / std::string(kEmbeddedWprpName),
                             EmbeddedWprpText());
}

}  // namespace labtrace::agent
