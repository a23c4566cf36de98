#include "controller/report/proto_json.h"

#include "absl/strings/numbers.h"
#include "google/protobuf/descriptor.h"
#include "google/protobuf/util/json_util.h"

namespace labtrace::controller {
namespace {

using google::protobuf::Descriptor;
using google::protobuf::FieldDescriptor;

// 64-bit integers as JSON numbers (the proto JSON mapping writes them as
// strings, which scripts then compare wrongly: "41" != 41).
void FixValue(nlohmann::json& v, const FieldDescriptor* f);

void FixMessage(nlohmann::json& j, const Descriptor* d) {
  if (!j.is_object() || d == nullptr) return;
  // Timestamp, Duration, ...: strings by design.
  if (d->file()->package() == "google.protobuf") return;
  for (int i = 0; i < d->field_count(); ++i) {
    const FieldDescriptor* f = d->field(i);
    auto it = j.find(f->name());
    if (it == j.end()) continue;
    if (f->is_map()) {
      const FieldDescriptor* value = f->message_type()->map_value();
      for (auto& [k, v] : it->items()) FixValue(v, value);
    } else if (f->is_repeated()) {
      for (auto& e : *it) FixValue(e, f);
    } else {
      FixValue(*it, f);
    }
  }
}

void FixValue(nlohmann::json& v, const FieldDescriptor* f) {
  switch (f->cpp_type()) {
    case FieldDescriptor::CPPTYPE_INT64: {
      std::int64_t n;
      if (v.is_string() && absl::SimpleAtoi(v.get<std::string>(), &n)) v = n;
      break;
    }
    case FieldDescriptor::CPPTYPE_UINT64: {
      std::uint64_t n;
      if (v.is_string() && absl::SimpleAtoi(v.get<std::string>(), &n)) v = n;
      break;
    }
    case FieldDescriptor::CPPTYPE_MESSAGE:
      FixMessage(v, f->message_type());
      break;
    default:
      break;
  }
}

}  // namespace

nlohmann::json ProtoJson(const google::protobuf::Message& message) {
  std::string s;
  google::protobuf::util::JsonPrintOptions o;
  o.preserve_proto_field_names = true;
  // Zero, false and empty are printed: a missing key is not a zero.
  o.always_print_primitive_fields = true;
  (void)google::protobuf::util::MessageToJsonString(message, &s, o);
  nlohmann::json j = nlohmann::json::parse(s, nullptr, /*allow_exceptions=*/false);
  FixMessage(j, message.GetDescriptor());
  return j;
}

}  // namespace labtrace::controller
