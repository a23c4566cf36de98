#include "controller/report/proto_json.h"

#include <string>

#include "google/protobuf/util/json_util.h"

namespace labtrace::controller {

nlohmann::json ProtoJson(const google::protobuf::Message& message) {
  std::string s;
  google::protobuf::util::JsonPrintOptions o;
  o.preserve_proto_field_names = true;
  (void)google::protobuf::util::MessageToJsonString(message, &s, o);
  return nlohmann::json::parse(s, nullptr, /*allow_exceptions=*/false);
}

}  // namespace labtrace::controller
