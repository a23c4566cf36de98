#include "controller/plan/plan.h"

#include <set>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/file_util.h"
#include "common/names.h"
#include "common/status_macros.h"
#include "common/yaml_util.h"
#include "yaml-cpp/yaml.h"

namespace labtrace::controller {
namespace {

absl::Status Bad(const std::string& source, const YAML::Node& node,
                 absl::string_view msg) {
  return YamlError(source, node, msg);
}

const std::set<std::string> kStepKeys = {"name",         "command",  "run_on",
                                         "profile",      "mode",     "timeout",
                                         "stop_timeout", "duration", "strict"};

// Applies the step fields present in `node` onto `step`.
absl::Status ApplyStepFields(const std::string& source, const YAML::Node& node,
                             PlanStep* step, bool allow_name) {
  for (const auto& kv : node) {
    const std::string key = kv.first.as<std::string>();
    const YAML::Node& v = kv.second;
    if (key == "name" && allow_name) {
      LABTRACE_RETURN_IF_ERROR(YamlReadString(source, v, &step->name));
    } else if (key == "command") {
      if (!v.IsSequence() || v.size() == 0) {
        return Bad(source, v,
                   "`command` is a non-empty list: [program, arg, ...] "
                   "(no shell; use [/bin/sh, -c, \"...\"] for one)");
      }
      step->command.clear();
      for (const auto& a : v) {
        std::string arg;
        LABTRACE_RETURN_IF_ERROR(YamlReadString(source, a, &arg));
        step->command.push_back(std::move(arg));
      }
    } else if (key == "run_on") {
      std::string s;
      LABTRACE_RETURN_IF_ERROR(YamlReadString(source, v, &s));
      if (s == "agent") {
        step->run_on = RunOn::kAgent;
      } else if (s == "controller") {
        step->run_on = RunOn::kController;
      } else {
        return Bad(source, v, "run_on is agent or controller");
      }
    } else if (key == "profile") {
      if (v.IsNull()) {
        step->profile.clear();
      } else {
        LABTRACE_RETURN_IF_ERROR(YamlReadString(source, v, &step->profile));
      }
    } else if (key == "mode") {
      std::string s;
      LABTRACE_RETURN_IF_ERROR(YamlReadString(source, v, &s));
      if (s == "file") {
        step->mode = v1::TRACE_MODE_FILE;
      } else if (s == "memory") {
        step->mode = v1::TRACE_MODE_MEMORY;
      } else {
        return Bad(source, v, "mode is file or memory");
      }
    } else if (key == "timeout" || key == "stop_timeout" || key == "duration") {
      absl::Duration d;
      if (absl::Status s = YamlReadDuration(source, v, &d); !s.ok()) {
        // A non-scalar gets the shared "expected a duration"; a bad value
        // keeps the step key in its message.
        if (!v.IsScalar()) return s;
        return Bad(
            source, v,
            absl::StrCat(key, " must be a positive duration like 90s or 10m"));
      }
      (key == "timeout"        ? step->timeout
       : key == "stop_timeout" ? step->stop_timeout
                               : step->duration) = d;
    } else if (key == "strict") {
      LABTRACE_RETURN_IF_ERROR(YamlReadBool(source, v, &step->strict));
    } else {
      return Bad(source, kv.first,
                 absl::StrCat("unknown step key \"", key,
                              "\"; known: ", absl::StrJoin(kStepKeys, ", ")));
    }
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<Plan> ParsePlan(const std::string& yaml,
                               const std::string& source) {
  Plan plan;
  plan.source = source;
  absl::StatusOr<YAML::Node> parsed = ParseYaml(yaml, source);
  if (!parsed.ok()) return parsed.status();
  const YAML::Node& root = *parsed;
  try {
    if (!root.IsMap())
      return Bad(source, root,
                 "a plan is a mapping (run:, setup:, tests:, ...)");
    for (const auto& kv : root) {
      const std::string key = kv.first.as<std::string>();
      if (key != "run" && key != "hosts" && key != "defaults" &&
          key != "setup" && key != "tests" && key != "cleanup" &&
          key != "sync_start") {
        return Bad(source, kv.first,
                   absl::StrCat("unknown key \"", key,
                                "\"; known: run, hosts, sync_start, defaults, "
                                "setup, tests, cleanup"));
      }
    }
    if (!root["run"]) return Bad(source, root, "the plan needs `run: NAME`");
    LABTRACE_RETURN_IF_ERROR(YamlReadString(source, root["run"], &plan.run));
    if (absl::Status s = ValidateName("run", plan.run); !s.ok()) {
      return Bad(source, root["run"], s.message());
    }
    if (root["hosts"]) {
      LABTRACE_RETURN_IF_ERROR(
          YamlReadString(source, root["hosts"], &plan.hosts));
    }
    if (root["sync_start"]) {
      LABTRACE_RETURN_IF_ERROR(
          YamlReadBool(source, root["sync_start"], &plan.sync_start));
    }
    PlanStep defaults;
    if (const YAML::Node d = root["defaults"]) {
      if (!d.IsMap()) return Bad(source, d, "`defaults` must be a mapping");
      YAML::Node step_fields(YAML::NodeType::Map);
      for (const auto& kv : d) {
        const std::string key = kv.first.as<std::string>();
        if (key == "keep") {
          std::string k;
          LABTRACE_RETURN_IF_ERROR(YamlReadString(source, kv.second, &k));
          if (k == "always") {
            plan.keep = KeepPolicy::kAlways;
          } else if (k == "on-failure") {
            plan.keep = KeepPolicy::kOnFailure;
          } else {
            return Bad(source, kv.second, "keep is always or on-failure");
          }
        } else if (key == "fail_fast") {
          LABTRACE_RETURN_IF_ERROR(
              YamlReadBool(source, kv.second, &plan.fail_fast));
        } else if (key == "name") {
          return Bad(source, kv.first, "defaults cannot set a step name");
        } else {
          step_fields[key] = kv.second;
        }
      }
      LABTRACE_RETURN_IF_ERROR(
          ApplyStepFields(source, step_fields, &defaults, false));
    }
    std::set<std::string> names;
    for (const char* phase : {"setup", "tests", "cleanup"}) {
      const YAML::Node list = root[phase];
      if (!list) continue;
      if (!list.IsSequence())
        return Bad(source, list, absl::StrCat("`", phase, "` must be a list"));
      for (const auto& node : list) {
        if (!node.IsMap() || !node["name"]) {
          return Bad(source, node,
                     "each step is a mapping with at least `name`");
        }
        PlanStep step = defaults;
        step.phase = std::string(phase) == "tests" ? "test" : phase;
        LABTRACE_RETURN_IF_ERROR(ApplyStepFields(source, node, &step, true));
        if (absl::Status s = ValidateName("step name", step.name); !s.ok()) {
          return Bad(source, node["name"], s.message());
        }
        if (!names.insert(step.name).second) {
          return Bad(source, node["name"],
                     absl::StrCat("step \"", step.name,
                                  "\" appears twice; names must be unique"));
        }
        (step.phase == "setup"  ? plan.setup
         : step.phase == "test" ? plan.tests
                                : plan.cleanup)
            .push_back(std::move(step));
      }
    }
    if (plan.setup.empty() && plan.tests.empty() && plan.cleanup.empty()) {
      return Bad(source, root, "the plan has no steps (setup, tests, cleanup)");
    }
  } catch (const YAML::Exception& e) {
    return absl::InvalidArgumentError(
        absl::StrCat(source, ":", e.mark.line + 1, ": ", e.msg));
  }
  return plan;
}

absl::StatusOr<Plan> LoadPlan(const std::string& path) {
  absl::StatusOr<std::string> text = ReadFile(PathFromUtf8(path));
  if (!text.ok()) {
    return absl::InvalidArgumentError(
        absl::StrCat("cannot read plan ", path, ": ", text.status().message()));
  }
  return ParsePlan(*text, path);
}

}  // namespace labtrace::controller
