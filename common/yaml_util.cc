#include "common/yaml_util.h"

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"

namespace labtrace {

absl::StatusOr<YAML::Node> ParseYaml(const std::string& text,
                                     const std::string& source) {
  try {
    return YAML::Load(text);
  } catch (const YAML::Exception& e) {
    return absl::InvalidArgumentError(absl::StrCat(
        source, ":", e.mark.line + 1, ":", e.mark.column + 1, ": ", e.msg));
  }
}

absl::Status YamlError(const std::string& source, const YAML::Node& node,
                       absl::string_view msg) {
  const YAML::Mark m = node.Mark();
  return absl::InvalidArgumentError(
      m.line < 0 ? absl::StrCat(source, ": ", msg)
                 : absl::StrCat(source, ":", m.line + 1, ": ", msg));
}

absl::Status CheckYamlKeys(const std::string& source, const YAML::Node& map,
                           absl::string_view section,
                           const std::set<std::string>& allowed) {
  if (!map.IsMap())
    return YamlError(source, map, absl::StrCat(section, " must be a mapping"));
  for (const auto& kv : map) {
    const std::string key = kv.first.as<std::string>();
    if (!allowed.count(key)) {
      return YamlError(
          source, kv.first,
          absl::StrCat("unknown key \"", key, "\" in ", section,
                       "; known keys: ", absl::StrJoin(allowed, ", ")));
    }
  }
  return absl::OkStatus();
}

absl::Status ParseBytesValue(absl::string_view text, std::uint64_t* out) {
  absl::string_view t = absl::StripAsciiWhitespace(text);
  std::size_t digits = 0;
  while (digits < t.size() && absl::ascii_isdigit(t[digits])) ++digits;
  std::uint64_t n = 0;
  if (digits == 0 || !absl::SimpleAtoi(t.substr(0, digits), &n)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "bad size \"", text, "\"; use bytes or a unit: 512MiB, 2GiB"));
  }
  absl::string_view unit = absl::StripAsciiWhitespace(t.substr(digits));
  int shift = 0;
  if (unit.empty() || unit == "B") {
    shift = 0;
  } else if (unit == "K" || unit == "KiB" || unit == "KB") {
    shift = 10;
  } else if (unit == "M" || unit == "MiB" || unit == "MB") {
    shift = 20;
  } else if (unit == "G" || unit == "GiB" || unit == "GB") {
    shift = 30;
  } else if (unit == "T" || unit == "TiB" || unit == "TB") {
    shift = 40;
  } else {
    return absl::InvalidArgumentError(
        absl::StrCat("bad size unit \"", unit, "\" in \"", text,
                     "\"; use KiB, MiB, GiB, TiB"));
  }
  if (shift > 0 && n > (~0ull >> shift)) {
    return absl::InvalidArgumentError(
        absl::StrCat("size \"", text, "\" is too large"));
  }
  *out = n << shift;
  return absl::OkStatus();
}

absl::Status ParseDurationValue(absl::string_view text, absl::Duration* out) {
  absl::Duration d;
  if (!absl::ParseDuration(text, &d) || d <= absl::ZeroDuration()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "bad duration \"", text,
        "\"; use a positive number with a unit, e.g. 90s, 10m, 4h"));
  }
  *out = d;
  return absl::OkStatus();
}

absl::Status YamlReadString(const std::string& source, const YAML::Node& node,
                            std::string* out) {
  if (!node.IsScalar()) return YamlError(source, node, "expected a string");
  *out = node.Scalar();
  return absl::OkStatus();
}

absl::Status YamlReadInt(const std::string& source, const YAML::Node& node,
                         int min, int max, int* out) {
  int v = 0;
  if (!node.IsScalar() || !absl::SimpleAtoi(node.Scalar(), &v)) {
    return YamlError(source, node, "expected an integer");
  }
  if (v < min || v > max) {
    return YamlError(
        source, node,
        absl::StrCat("value ", v, " out of range [", min, ", ", max, "]"));
  }
  *out = v;
  return absl::OkStatus();
}

absl::Status YamlReadBool(const std::string& source, const YAML::Node& node,
                          bool* out) {
  bool v = false;
  if (!node.IsScalar() || !YAML::convert<bool>::decode(node, v)) {
    return YamlError(source, node, "expected true or false");
  }
  *out = v;
  return absl::OkStatus();
}

absl::Status YamlReadBytes(const std::string& source, const YAML::Node& node,
                           std::uint64_t* out) {
  if (!node.IsScalar()) return YamlError(source, node, "expected a size");
  absl::Status s = ParseBytesValue(node.Scalar(), out);
  if (!s.ok()) return YamlError(source, node, s.message());
  return absl::OkStatus();
}

absl::Status YamlReadDuration(const std::string& source, const YAML::Node& node,
                              absl::Duration* out) {
  if (!node.IsScalar()) return YamlError(source, node, "expected a duration");
  absl::Status s = ParseDurationValue(node.Scalar(), out);
  if (!s.ok()) return YamlError(source, node, s.message());
  return absl::OkStatus();
}

}  // namespace labtrace
