// YAML helpers shared by the agent config, the inventory and lab plans:
// parsing with file:line:column errors, errors that point at a node, and
// typed readers for scalars, so that a wrong value gives the same message
// ("source:line: what is wrong") in every file labtrace reads.
//
//   int port = 7411;
//   LABTRACE_RETURN_IF_ERROR(
//       YamlReadInt(source, node["port"], 1, 65535, &port));
//
// The readers leave *out untouched on error.

#ifndef LABTRACE_COMMON_YAML_UTIL_H_
#define LABTRACE_COMMON_YAML_UTIL_H_

#include <cstdint>
#include <set>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
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

// Parses a byte count: "1073741824", "512MiB", "2 GiB", "0". Units KiB, MiB,
// GiB, TiB (also K/M/G/T and KB/MB/GB/TB, all powers of 1024) or B.
// InvalidArgument (without a location) for anything else or on overflow.
absl::Status ParseBytesValue(absl::string_view text, std::uint64_t* out);

// Parses a positive duration with a unit ("90s", "10m", "4h", "1h30m"; see
// absl::ParseDuration). InvalidArgument (without a location) for anything
// else, zero and negative durations included.
absl::Status ParseDurationValue(absl::string_view text, absl::Duration* out);

// The readers below: InvalidArgument "source:line: why" (see YamlError) when
// `node` is not a scalar of the expected kind.

// A scalar as text ("expected a string" for null, lists and mappings).
absl::Status YamlReadString(const std::string& source, const YAML::Node& node,
                            std::string* out);

// A decimal integer in [min, max] ("expected an integer", or "value V out of
// range [min, max]").
absl::Status YamlReadInt(const std::string& source, const YAML::Node& node,
                         int min, int max, int* out);

// A YAML boolean: true/false, yes/no, on/off, y/n ("expected true or false").
absl::Status YamlReadBool(const std::string& source, const YAML::Node& node,
                          bool* out);

// A byte count as ParseBytesValue reads it ("expected a size" for a
// non-scalar, else ParseBytesValue's message).
absl::Status YamlReadBytes(const std::string& source, const YAML::Node& node,
                           std::uint64_t* out);

// A positive duration as ParseDurationValue reads it ("expected a duration"
// for a non-scalar, else ParseDurationValue's message, e.g. `bad duration
// "banana"; use a positive number with a unit, e.g. 90s, 10m, 4h`).
absl::Status YamlReadDuration(const std::string& source, const YAML::Node& node,
                              absl::Duration* out);

}  // namespace labtrace

#endif  // LABTRACE_COMMON_YAML_UTIL_H_
