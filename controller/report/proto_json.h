// Protobuf messages as nlohmann::json values (field names as in the .proto),
// for --json output and manifests.

#ifndef LABTRACE_CONTROLLER_REPORT_PROTO_JSON_H_
#define LABTRACE_CONTROLLER_REPORT_PROTO_JSON_H_

#include "google/protobuf/message.h"
#include "nlohmann/json.hpp"

namespace labtrace::controller {

nlohmann::json ProtoJson(const google::protobuf::Message& message);

}  // namespace labtrace::controller

#endif  // LABTRACE_CONTROLLER_REPORT_PROTO_JSON_H_
