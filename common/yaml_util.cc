#include "common/yaml_util.h"

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

}  // namespace labtrace
