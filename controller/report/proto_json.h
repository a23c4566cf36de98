// Protobuf messages as nlohmann::json values, for --json output and
// manifests: field names as in the .proto, zero, false
// and empty fields printed (never a missing key), 64-bit counters as JSON
// numbers (not the proto JSON mapping's strings). Timestamps and durations
// stay RFC 3339 / "1.5s" strings.

#ifndef LABTRACE_CONTROLLER_REPORT_PROTO_JSON_H_
#define LABTRACE_CONTROLLER_REPORT_PROTO_JSON_H_

#include "google/protobuf/message.h"
#include "nlohmann/json.hpp"

namespace labtrace::controller {

nlohmann::json ProtoJson(const google::protobuf::Message& message);

}  // namespace labtrace::controller

#endif  // LABTRACE_CONTROLLER_REPORT_PROTO_JSON_H_
