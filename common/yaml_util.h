// YAML helpers shared by the agent config, the inventory and lab plans:
// parsing with file:line:column errors, and errors that point at a node.

#ifndef LABTRACE_COMMON_YAML_UTIL_H_
#define LABTRACE_COMMON_YAML_UTIL_H_

#include <set>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "yaml-cpp/yaml.h"

namespace labtrace {

// Parses `text`; a syntax error becomes InvalidArgument "source:line:col: why".
absl::StatusOr<YAML::Node> ParseYaml(const std::string& text,
                                     const std::string& source);

// InvalidArgument "source:line: msg" for the line of `node`.
absl::Status YamlError(const std::string& source, const YAML::Node& node,
                       absl::string_view msg);

// InvalidArgument unless `map` is a mapping whose keys are all in `allowed`
// (the message lists them: typos are the common mistake).
absl::Status CheckYamlKeys(const std::string& source, const YAML::Node& map,
                           absl::string_view section,
                           const std::set<std::string>& allowed);

}  // namespace labtrace

#endif  // LABTRACE_COMMON_YAML_UTIL_H_
