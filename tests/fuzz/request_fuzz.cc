// libFuzzer target: what the agent does with untrusted request bytes before
// any backend runs: protobuf JSON parsing of request bodies (the REST
// mirror), name / label / file-name validation, and bearer-token parsing.
// Built and run by tests/fuzz/run_fuzz.sh under ASan + UBSan.

#include <cstddef>
#include <cstdint>
#include <string>

#include "agent/service/auth.h"
#include "common/file_util.h"
#include "common/names.h"
#include "google/protobuf/util/json_util.h"
#include "labtrace/v1/agent.pb.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data,
                                      std::size_t size) {
  const std::string input(reinterpret_cast<const char*>(data), size);
  google::protobuf::util::JsonParseOptions opts;
  opts.ignore_unknown_fields = false;

  labtrace::v1::StartTraceRequest start;
  if (google::protobuf::util::JsonStringToMessage(input, &start, opts).ok()) {
    (void)labtrace::ValidateName("trace name", start.name());
    (void)labtrace::ValidateOptionalName("run_id", start.run_id());
    (void)labtrace::ValidateOptionalName("phase", start.phase());
    for (const auto& [k, v] : start.labels()) {
      (void)labtrace::ValidateName("label key", k);
      (void)labtrace::ValidateLabelValue(k, v);
    }
  }
  labtrace::v1::RunCommandRequest run;
  (void)google::protobuf::util::JsonStringToMessage(input, &run, opts);

  (void)labtrace::IsValidName(input);
  (void)labtrace::QuoteForMessage(input);
  (void)labtrace::IsSafeFileName(input);

  static const labtrace::agent::Authorizer* authorizer = [] {
    return new labtrace::agent::Authorizer(
        {{"fuzz", labtrace::agent::Role::kControl,
          labtrace::Sha256Hex("secret")}});
  }();
  (void)authorizer->Authorize(input, "", "Fuzz", labtrace::agent::Role::kRead);
  return 0;
}
