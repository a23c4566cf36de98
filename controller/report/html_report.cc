#include "controller/report/html_report.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <map>
#include <optional>
#include <unordered_map>
#include <vector>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_replace.h"
#include "absl/strings/str_split.h"
#include "absl/time/time.h"
#include "common/file_util.h"
#include "controller/report/html_report_assets.h"

namespace labtrace::controller {
namespace {

using nlohmann::json;

// The manifest schema this build renders (controller/report/
// manifest.schema.json; plan_runner.h's kManifestSchemaVersion).
constexpr int kReadableSchemaVersion = 1;
// Long texts (errors carrying a command's output) are cut in the report;
// the manifest keeps them whole.
constexpr std::size_t kMaxText = 4096;
constexpr std::size_t kMaxStaticText = 300;
// The static (no-JS) part stays small at any fleet size.
constexpr std::size_t kMaxStaticWarnings = 200;
constexpr std::size_t kMaxStaticHostsPerStep = 5;

// Mistyped or missing fields read as empty: the manifest is input.
const json& Field(const json& j, const char* key) {
  static const json* const kNull = new json();
  if (!j.is_object()) return *kNull;
  auto it = j.find(key);
  return it == j.end() ? *kNull : *it;
}
std::string Str(const json& j, const char* key) {
  const json& v = Field(j, key);
  return v.is_string() ? v.get<std::string>() : "";
}
double Num(const json& j, const char* key, double def = 0) {
  const json& v = Field(j, key);
  return v.is_number() ? v.get<double>() : def;
}
std::int64_t Int(const json& j, const char* key, std::int64_t def = 0) {
  const json& v = Field(j, key);
  if (v.is_number_integer()) return v.get<std::int64_t>();
  if (v.is_number()) return static_cast<std::int64_t>(v.get<double>());
  return def;
}
bool Bool(const json& j, const char* key) {
  const json& v = Field(j, key);
  return v.is_boolean() && v.get<bool>();
}
const json& Arr(const json& j, const char* key) {
  static const json* const kEmpty = new json(json::array());
  const json& v = Field(j, key);
  return v.is_array() ? v : *kEmpty;
}
std::vector<std::string> Strings(const json& j, const char* key) {
  std::vector<std::string> out;
  for (const json& v : Arr(j, key)) {
    if (v.is_string()) out.push_back(v.get<std::string>());
  }
  return out;
}

std::optional<absl::Time> ParseTime(const std::string& s) {
  absl::Time t;
  std::string err;
  if (s.empty() || !absl::ParseTime(absl::RFC3339_full, s, &t, &err)) {
    return std::nullopt;
  }
  return t;
}

// Length of the valid UTF-8 sequence at s[i], or 0 if it is not one.
std::size_t Utf8SequenceAt(absl::string_view s, std::size_t i) {
  const auto b = [&](std::size_t k) {
    return static_cast<unsigned char>(s[i + k]);
  };
  const unsigned char c = b(0);
  if (c < 0x80) return 1;
  std::size_t n = 0;
  std::uint32_t cp = 0;
  if (c >= 0xC2 && c <= 0xDF) {
    n = 2;
    cp = c & 0x1F;
  } else if (c >= 0xE0 && c <= 0xEF) {
    n = 3;
    cp = c & 0x0F;
  } else if (c >= 0xF0 && c <= 0xF4) {
    n = 4;
    cp = c & 0x07;
  } else {
    return 0;
  }
  if (i + n > s.size()) return 0;
  for (std::size_t k = 1; k < n; ++k) {
    if ((b(k) & 0xC0) != 0x80) return 0;
    cp = (cp << 6) | (b(k) & 0x3F);
  }
  if ((n == 3 && (cp < 0x800 || (cp >= 0xD800 && cp <= 0xDFFF))) ||
      (n == 4 && (cp < 0x10000 || cp > 0x10FFFF))) {
    return 0;
  }
  return n;
}

// At most `max` bytes of `s`, cut on a character boundary, with a note.
std::string Cut(const std::string& s, std::size_t max) {
  if (s.size() <= max) return s;
  std::size_t end = max;
  while (end > 0 && (static_cast<unsigned char>(s[end]) & 0xC0) == 0x80) --end;
  return absl::StrCat(s.substr(0, end), " [... ", s.size() - end,
                      " more bytes in manifest.json]");
}

std::string ExitCodeText(std::int64_t code) {
  switch (code) {
    case 0:
      return "ok";
    case 1:
      return "internal error";
    case 2:
      return "usage or configuration error";
    case 3:
      return "some host unreachable or timed out";
    case 4:
      return "some step failed";
    case 5:
      return "data problem";
    case 130:
      return "interrupted";
  }
  return "unknown exit code";
}

std::string HumanSeconds(double s) {
  if (!(s >= 0)) return "-";
  if (s < 1)
    return absl::StrCat(static_cast<int>(std::lround(s * 1000)), " ms");
  if (s < 60) return absl::StrFormat("%.1f s", s);
  const auto total = static_cast<std::int64_t>(std::llround(s));
  if (total < 3600) return absl::StrFormat("%dm%02ds", total / 60, total % 60);
  return absl::StrFormat("%dh%02dm%02ds", total / 3600, (total / 60) % 60,
                         total % 60);
}

// A command line as one copy-pastable string (POSIX shell quoting where
// needed).
std::string ShellJoin(const std::vector<std::string>& argv) {
  std::vector<std::string> parts;
  for (const std::string& a : argv) {
    const bool plain =
        !a.empty() && a.find_first_not_of(
                          "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
                          "0123456789-_./=:,+@%") == std::string::npos;
    if (plain) {
      parts.push_back(a);
    } else {
      parts.push_back(
          absl::StrCat("'", absl::StrReplaceAll(a, {{"'", "'\\''"}}), "'"));
    }
  }
  return absl::StrJoin(parts, " ");
}

bool IsProblemOutcome(const std::string& outcome) {
  return outcome != "ok" && outcome != "skipped";
}

bool IsGoodFileStatus(const std::string& status) {
  return status == "collected" || status == "already_present" ||
         status == "uploaded" || status == "already_uploaded";
}

// Interns strings for the embedded data (outcomes, phases, repeated
// errors): the data holds indices.
class StringTable {
 public:
  int Add(const std::string& s) {
    if (s.empty()) return -1;
    auto [it, added] = index_.try_emplace(s, static_cast<int>(list_.size()));
    if (added) list_.push_back(s);
    return it->second;
  }
  json ToJson() const { return json(list_); }

 private:
  std::unordered_map<std::string, int> index_;
  std::vector<std::string> list_;
};

// What the static part and the embedded data both need.
struct Model {
  std::optional<absl::Time> started;
  std::vector<std::string> hosts;  // Lanes, in order of first appearance.
  std::map<std::string, int> host_index;
  std::size_t host_steps = 0;
  std::map<std::string, std::size_t> outcome_counts;
  std::size_t steps_passed = 0, steps_failed = 0, steps_skipped = 0;
  std::size_t files = 0, files_bad = 0, traces_lost_events = 0;
  std::int64_t bytes = 0, events_lost = 0;

  int HostIndex(const std::string& name) {
    auto [it, added] =
        host_index.try_emplace(name, static_cast<int>(hosts.size()));
    if (added) hosts.push_back(name);
    return it->second;
  }
};

std::string FileProblems(const json& f) {
  std::vector<std::string> p = Strings(Field(f, "summary"), "problems");
  return absl::StrJoin(p, "; ");
}

// The data the inline script draws from (see kReportScript* for the
// reader). Times are milliseconds from the run's start.
//   hosts: [name]; steps: [[name, phase, start, end, passed, skipped]]
//   cells: per step, a flat array, kCellStride numbers per host:
//     host, outcome, exit code, start (null: the step's), duration,
//     error, trace error, trace file, log file, command timed out
//   files: [[host, step, phase, path, href (0 none, 1 = path, or the URL),
//            size, sha256, events lost, buffers lost, status, problems,
//            error, backend, object URL]]
// Strings other than names and paths are indices into `str` (-1: none).
json BuildData(const json& m, Model* model) {
  StringTable str;
  const std::optional<absl::Time> t0 = model->started;
  auto rel_ms = [&](const std::string& when) -> json {
    std::optional<absl::Time> t = ParseTime(when);
    if (!t || !t0) return nullptr;
    return std::llround(absl::ToDoubleMilliseconds(*t - *t0));
  };
  // Hosts: steps first (inventory order), then files, then lost hosts.
  for (const json& s : Arr(m, "steps")) {
    for (const json& h : Arr(s, "hosts")) model->HostIndex(Str(h, "host"));
  }
  for (const json& f : Arr(m, "files")) model->HostIndex(Str(f, "host"));
  for (const std::string& h : Strings(m, "lost_hosts")) model->HostIndex(h);

  std::map<std::string, int> step_index;
  const json& steps_in = Arr(m, "steps");
  for (std::size_t i = 0; i < steps_in.size(); ++i) {
    step_index.try_emplace(Str(steps_in[i], "name"), static_cast<int>(i));
  }
  // Files, and each (host, step)'s trace and log.
  std::map<std::pair<int, int>, std::pair<int, int>> cell_files;
  json files = json::array();
  for (const json& f : Arr(m, "files")) {
    const int host = model->HostIndex(Str(f, "host"));
    auto si = step_index.find(Str(f, "step"));
    const int step = si == step_index.end() ? -1 : si->second;
    const std::string path = Str(f, "file");
    const std::string href = RelativeFileUrl(path);
    const json& sum = Field(f, "summary");
    const std::int64_t ev = Int(sum, "events_lost");
    const std::int64_t buf = Int(sum, "buffers_lost");
    const std::string problems = FileProblems(f);
    const std::string status = Str(f, "status");
    const std::string backend = Str(f, "backend");
    const int index = static_cast<int>(files.size());
    files.push_back({host, step, str.Add(Str(f, "phase")), path,
                     href.empty()   ? json(0)
                     : href == path ? json(1)
                                    : json(href),
                     Int(f, "size_bytes"), Str(f, "sha256"), ev, buf,
                     str.Add(status), str.Add(Cut(problems, kMaxText)),
                     str.Add(Cut(Str(f, "error"), kMaxText)), str.Add(backend),
                     str.Add(Str(Field(f, "object"), "url"))});
    ++model->files;
    model->bytes += Int(f, "size_bytes");
    model->events_lost += ev;
    if (ev > 0 || buf > 0) ++model->traces_lost_events;
    if (!problems.empty() || !Str(f, "error").empty() ||
        !IsGoodFileStatus(status)) {
      ++model->files_bad;
    }
    if (step >= 0) {
      auto [it, added] = cell_files.try_emplace({host, step}, -1, -1);
      int& slot = backend == "exec" ? it->second.second : it->second.first;
      if (slot < 0) slot = index;
    }
  }

  json steps = json::array();
  json cells = json::array();
  for (const json& s : steps_in) {
    const bool skipped = Bool(s, "skipped");
    const bool passed = Bool(s, "passed");
    if (skipped) {
      ++model->steps_skipped;
    } else if (passed) {
      ++model->steps_passed;
    } else {
      ++model->steps_failed;
    }
    const int step = static_cast<int>(steps.size());
    steps.push_back({Str(s, "name"), str.Add(Str(s, "phase")),
                     rel_ms(Str(s, "started_at")), rel_ms(Str(s, "ended_at")),
                     passed ? 1 : 0, skipped ? 1 : 0});
    json flat = json::array();
    for (const json& h : Arr(s, "hosts")) {
      const int host = model->HostIndex(Str(h, "host"));
      const std::string outcome = Str(h, "outcome");
      ++model->host_steps;
      ++model->outcome_counts[outcome];
      auto cf = cell_files.find({host, step});
      const json& trace_started = Field(h, "trace_started_at");
      flat.push_back(host);
      flat.push_back(str.Add(outcome));
      flat.push_back(Int(h, "exit_code", -1));
      flat.push_back(trace_started.is_string()
                         ? rel_ms(trace_started.get<std::string>())
                         : json(nullptr));
      flat.push_back(std::llround(Num(h, "duration_s") * 1000));
      flat.push_back(str.Add(Cut(Str(h, "error"), kMaxText)));
      flat.push_back(str.Add(Cut(Str(h, "trace_error"), kMaxText)));
      flat.push_back(cf == cell_files.end() ? -1 : cf->second.first);
      flat.push_back(cf == cell_files.end() ? -1 : cf->second.second);
      flat.push_back(Bool(h, "command_timed_out") ? 1 : 0);
    }
    cells.push_back(std::move(flat));
  }
  json data;
  data["t0"] = t0 ? absl::ToUnixMillis(*t0) : 0;
  data["dur"] = std::llround(Num(m, "duration_s") * 1000);
  data["hosts"] = model->hosts;
  data["lost"] = Strings(m, "lost_hosts");
  data["steps"] = std::move(steps);
  data["cells"] = std::move(cells);
  data["files"] = std::move(files);
  data["str"] = str.ToJson();
  return data;
}

void Row(std::string* out, absl::string_view label, absl::string_view value,
         bool code = false) {
  absl::StrAppend(out, "<tr><th>", label, "</th><td>", code ? "<code>" : "",
                  HtmlEscape(value), code ? "</code>" : "", "</td></tr>\n");
}

// The parts that need no JavaScript. At the top: warnings, counts, failed
// steps.
std::string StaticTop(const json& m, const Model& model) {
  std::string o;
  const std::vector<std::string> warnings = Strings(m, "warnings");
  if (!warnings.empty()) {
    absl::StrAppend(&o, "<section id=\"warnings\" class=\"warnings\">",
                    "<h2>Warnings (", warnings.size(), ")</h2>\n<ul>\n");
    for (std::size_t i = 0; i < warnings.size() && i < kMaxStaticWarnings;
         ++i) {
      absl::StrAppend(&o, "<li>",
                      HtmlEscape(Cut(warnings[i], kMaxStaticText * 2)),
                      "</li>\n");
    }
    if (warnings.size() > kMaxStaticWarnings) {
      absl::StrAppend(&o, "<li class=\"more\">... and ",
                      warnings.size() - kMaxStaticWarnings,
                      " more in manifest.json</li>\n");
    }
    absl::StrAppend(&o, "</ul></section>\n");
  }

  // Counts.
  absl::StrAppend(&o, "<section id=\"summary\"><h2>Summary</h2>\n",
                  "<div class=\"counts\">");
  auto count = [&](absl::string_view label, auto value, bool bad = false) {
    absl::StrAppend(&o, "<div class=\"count", bad ? " bad" : "", "\"><b>",
                    value, "</b><span>", label, "</span></div>");
  };
  count("hosts", model.hosts.size());
  count("steps", Arr(m, "steps").size());
  count("steps passed", model.steps_passed);
  count("steps failed", model.steps_failed, model.steps_failed > 0);
  count("steps skipped", model.steps_skipped);
  for (const auto& [outcome, n] : model.outcome_counts) {
    if (IsProblemOutcome(outcome)) {
      count(HtmlEscape(absl::StrCat("host-steps ", outcome)), n, true);
    }
  }
  count("files", model.files);
  count("bytes", HtmlEscape(HumanBytes(static_cast<std::uint64_t>(
                     std::max<std::int64_t>(0, model.bytes)))));
  count("files with problems", model.files_bad, model.files_bad > 0);
  count("traces that lost events", model.traces_lost_events,
        model.traces_lost_events > 0);
  count("hosts lost", Arr(m, "lost_hosts").size(),
        !Arr(m, "lost_hosts").empty());
  absl::StrAppend(&o, "</div>\n");

  // Failed steps: a line each (counts, the first hosts, the first error),
  // and every failing host below, folded (bounded for huge fleets).
  std::string lines, details;
  std::size_t detail_rows = 0, detail_left = 0;
  for (const json& s : Arr(m, "steps")) {
    if (Bool(s, "passed") || Bool(s, "skipped")) continue;
    std::map<std::string, std::size_t> outcomes;
    std::vector<std::string> first_hosts;
    std::string first_error;
    std::size_t failing = 0;
    for (const json& h : Arr(s, "hosts")) {
      const std::string outcome = Str(h, "outcome");
      if (!IsProblemOutcome(outcome)) continue;
      ++failing;
      ++outcomes[outcome];
      const std::int64_t exit = Int(h, "exit_code", -1);
      if (first_hosts.size() < kMaxStaticHostsPerStep) {
        first_hosts.push_back(absl::StrCat(
            Str(h, "host"), exit >= 0 ? absl::StrCat(" (", exit, ")") : ""));
      }
      if (first_error.empty()) first_error = Str(h, "error");
      if (detail_rows == kMaxStaticWarnings) {
        ++detail_left;
        continue;
      }
      ++detail_rows;
      absl::StrAppend(
          &details, "<tr class=\"o-", HtmlEscape(outcome), "\"><td>",
          HtmlEscape(Str(s, "name")), "</td><td>", HtmlEscape(Str(h, "host")),
          "</td><td>", HtmlEscape(outcome), "</td><td>",
          exit >= 0 ? absl::StrCat(exit) : "", "</td><td class=\"err\">",
          HtmlEscape(Cut(Str(h, "error"), kMaxStaticText)), "</td></tr>\n");
    }
    std::vector<std::string> counts;
    for (const auto& [outcome, k] : outcomes) {
      counts.push_back(absl::StrCat(k, " ", outcome));
    }
    if (failing > first_hosts.size()) {
      first_hosts.push_back(
          absl::StrCat("+", failing - first_hosts.size(), " more"));
    }
    absl::StrAppend(
        &lines, "<tr class=\"o-failed\"><td>", HtmlEscape(Str(s, "name")),
        "</td><td>", HtmlEscape(Str(s, "phase")), "</td><td>",
        failing == 0 ? "none (see warnings)"
                     : HtmlEscape(absl::StrJoin(counts, ", ")),
        "</td><td>", HtmlEscape(absl::StrJoin(first_hosts, ", ")),
        "</td><td class=\"err\">", HtmlEscape(Cut(first_error, kMaxStaticText)),
        "</td></tr>\n");
  }
  if (!lines.empty()) {
    absl::StrAppend(
        &o,
        "<h3>Failed steps</h3>\n<div class=\"scrollbox\">"
        "<table id=\"failed-steps\" class=\"grid\">"
        "<thead><tr><th>step</th><th>phase</th><th>hosts not ok</th>"
        "<th>hosts (exit code)</th><th>first error</th></tr></thead><tbody>\n",
        lines, "</tbody></table></div>\n");
    absl::StrAppend(
        &o,
        "<details id=\"failed-hosts\"><summary>Every failing host and its "
        "error</summary>\n<div class=\"scrollbox\"><table "
        "class=\"grid\"><thead><tr><th>step</th>"
        "<th>host</th><th>outcome</th><th>exit</th><th>error</th></tr>"
        "</thead><tbody>\n",
        details,
        detail_left > 0
            ? absl::StrCat("<tr><td colspan=\"5\" class=\"more\">... and ",
                           detail_left,
                           " more in the table below and manifest.json"
                           "</td></tr>\n")
            : "",
        "</tbody></table></div></details>\n");
  }
  absl::StrAppend(&o, "</section>\n");
  return o;
}

// The static part below the interactive one: every step, and the run.
std::string StaticBottom(const json& m, const Model& model) {
  std::string o;
  // Every step: outcome counts and timing.
  absl::StrAppend(&o,
                  "<section id=\"steps-section\"><h2>Steps</h2>\n"
                  "<table id=\"steps\" class=\"grid\"><thead>"
                  "<tr><th>#</th><th>step</th><th>phase</th><th>runs on</th>"
                  "<th>result</th><th>hosts ok</th><th>not ok</th>"
                  "<th>start</th><th>duration</th></tr></thead><tbody>\n");
  std::size_t n = 0;
  for (const json& s : Arr(m, "steps")) {
    std::size_t ok = 0, bad = 0;
    for (const json& h : Arr(s, "hosts")) {
      const std::string outcome = Str(h, "outcome");
      if (outcome == "ok") ++ok;
      if (IsProblemOutcome(outcome)) ++bad;
    }
    const bool skipped = Bool(s, "skipped");
    const bool passed = Bool(s, "passed");
    std::optional<absl::Time> st = ParseTime(Str(s, "started_at"));
    std::optional<absl::Time> en = ParseTime(Str(s, "ended_at"));
    std::string start = "-", duration = "-";
    if (st && model.started) {
      start = absl::StrCat(
          "+", HumanSeconds(absl::ToDoubleSeconds(*st - *model.started)));
    }
    if (st && en) duration = HumanSeconds(absl::ToDoubleSeconds(*en - *st));
    const char* result = skipped ? "skipped" : passed ? "passed" : "FAILED";
    absl::StrAppend(
        &o, "<tr class=\"",
        skipped  ? "o-skipped"
        : passed ? ""
                 : "o-failed",
        "\"><td>", ++n, "</td><td>", HtmlEscape(Str(s, "name")),
        "</td><td><span class=\"ph ph-", HtmlEscape(Str(s, "phase")), "\">",
        HtmlEscape(Str(s, "phase")), "</span></td><td>",
        HtmlEscape(Str(s, "run_on")), "</td><td>", result, "</td><td>", ok,
        "</td><td>", bad, "</td><td>", HtmlEscape(start), "</td><td>",
        HtmlEscape(duration), "</td></tr>\n");
  }
  absl::StrAppend(&o, "</tbody></table></section>\n");

  // The run.
  absl::StrAppend(&o,
                  "<section id=\"run-info\"><h2>Run</h2>\n<table "
                  "class=\"kv\">\n");
  Row(&o, "run id", Str(m, "run_id"), true);
  Row(&o, "command line", ShellJoin(Strings(m, "command_line")), true);
  const json& plan = Field(m, "plan");
  Row(&o, "plan",
      absl::StrCat(Str(plan, "run"), " (", Str(plan, "source"),
                   "), keep: ", Str(plan, "keep")));
  Row(&o, "labtrace version", Str(m, "labtrace_version"));
  Row(&o, "started", Str(m, "started_at"));
  Row(&o, "ended", Str(m, "ended_at"));
  Row(&o, "duration", HumanSeconds(Num(m, "duration_s", -1)));
  Row(&o, "exit code",
      absl::StrCat(Int(m, "exit_code", -1), " (",
                   ExitCodeText(Int(m, "exit_code", -1)), ")"));
  Row(&o, "interrupted", Bool(m, "interrupted") ? "yes" : "no");
  Row(&o, "synchronised start", Bool(m, "sync_start") ? "yes" : "no");
  Row(&o, "hosts lost", absl::StrJoin(Strings(m, "lost_hosts"), ", "));
  Row(&o, "files deleted on agents (keep: on-failure)",
      absl::StrCat(Arr(m, "deleted_on_agents").size()));
  absl::StrAppend(&o,
                  "<tr><th>manifest</th><td><a href=\"manifest.json\">"
                  "manifest.json</a> (schema version ",
                  Int(m, "schema_version", -1), ")</td></tr>\n",
                  "</table></section>\n");
  return o;
}

// The CSP source of a script: 'sha256-<base64 of its digest>'.
std::string ScriptHashSource(const std::string& script) {
  return absl::StrCat(
      "'sha256-", absl::Base64Escape(absl::HexStringToBytes(Sha256Hex(script))),
      "'");
}

}  // namespace

std::string HtmlEscape(absl::string_view s) {
  std::string out;
  out.reserve(s.size() + s.size() / 8);
  for (std::size_t i = 0; i < s.size();) {
    const unsigned char c = static_cast<unsigned char>(s[i]);
    switch (c) {
      case '&':
        out += "&amp;";
        ++i;
        continue;
      case '<':
        out += "&lt;";
        ++i;
        continue;
      case '>':
        out += "&gt;";
        ++i;
        continue;
      case '"':
        out += "&quot;";
        ++i;
        continue;
      case '\'':
        out += "&#39;";
        ++i;
        continue;
      default:
        break;
    }
    if ((c < 0x20 && c != '\t' && c != '\n') || c == 0x7F) {
      out += "\xEF\xBF\xBD";
      ++i;
      continue;
    }
    const std::size_t n = Utf8SequenceAt(s, i);
    if (n == 0) {
      out += "\xEF\xBF\xBD";
      ++i;
      continue;
    }
    out.append(s.data() + i, n);
    i += n;
  }
  return out;
}

std::string RelativeFileUrl(absl::string_view path) {
  std::string p(path);
  std::replace(p.begin(), p.end(), '\\', '/');
  if (p.empty() || p[0] == '/' ||
      (p.size() >= 2 && p[1] == ':')) {  // C:... is absolute on Windows.
    return "";
  }
  std::vector<std::string> out;
  for (absl::string_view seg : absl::StrSplit(p, '/', absl::SkipEmpty())) {
    if (seg == "..") return "";
    if (seg == ".") continue;
    std::string e;
    for (const char ch : seg) {
      const unsigned char c = static_cast<unsigned char>(ch);
      if ((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
          (c >= '0' && c <= '9') || c == '-' || c == '.' || c == '_' ||
          c == '~') {
        e.push_back(ch);
      } else {
        absl::StrAppend(&e, "%", absl::StrFormat("%02X", c));
      }
    }
    out.push_back(std::move(e));
  }
  return absl::StrJoin(out, "/");
}

std::string JsonForScript(const json& j) {
  const std::string text =
      j.dump(-1, ' ', false, json::error_handler_t::replace);
  std::string out;
  out.reserve(text.size() + 64);
  for (std::size_t i = 0; i < text.size(); ++i) {
    const char c = text[i];
    if (c == '<') {
      out += "\\u003c";
    } else if (c == '>') {
      out += "\\u003e";
    } else if (c == '&') {
      out += "\\u0026";
    } else if (c == '\xE2' && i + 2 < text.size() && text[i + 1] == '\x80' &&
               (text[i + 2] == '\xA8' || text[i + 2] == '\xA9')) {
      out += text[i + 2] == '\xA8' ? "\\u2028" : "\\u2029";
      i += 2;
    } else {
      out.push_back(c);
    }
  }
  return out;
}

absl::StatusOr<json> ReadRunManifest(const std::filesystem::path& run_dir) {
  const std::filesystem::path path = run_dir / "manifest.json";
  std::error_code ec;
  if (!std::filesystem::exists(path, ec)) {
    return absl::NotFoundError(absl::StrCat(
        "no manifest.json in ", PathToUtf8(run_dir),
        std::filesystem::is_directory(run_dir, ec) ? "" : " (no such folder)",
        "; give the run folder `labtrace run` wrote (<out>/<run_id>)"));
  }
  absl::StatusOr<std::string> text = ReadFile(path);
  if (!text.ok()) return text.status();
  json m = json::parse(*text, nullptr, /*allow_exceptions=*/false);
  if (!m.is_object()) {
    return absl::InvalidArgumentError(
        absl::StrCat(PathToUtf8(path), " is not a JSON object (",
                     m.is_discarded() ? "not valid JSON" : "wrong type",
                     "); was it cut short?"));
  }
  const std::int64_t version = Int(m, "schema_version", -1);
  if (version != kReadableSchemaVersion) {
    return absl::FailedPreconditionError(
        absl::StrCat(PathToUtf8(path), " has schema_version ", version,
                     "; this labtrace reads version ", kReadableSchemaVersion));
  }
  return m;
}

std::string RenderHtmlReport(const json& m) {
  Model model;
  model.started = ParseTime(Str(m, "started_at"));
  const json data = BuildData(m, &model);
  const std::string script =
      absl::StrCat(kReportScript1, kReportScript2, kReportScript3);
  const std::string run_id = Str(m, "run_id");
  const std::int64_t exit_code = Int(m, "exit_code", -1);
  std::string o;
  o.reserve(1 << 16);
  absl::StrAppend(
      &o,
      "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
      "<meta name=\"viewport\" content=\"width=device-width, "
      "initial-scale=1\">\n"
      // Nothing leaves the file: no fetches, no other scripts.
      "<meta http-equiv=\"Content-Security-Policy\" content=\"default-src "
      "'none'; img-src data:; style-src 'unsafe-inline'; script-src ",
      ScriptHashSource(script),
      "\">\n<meta name=\"generator\" content=\"labtrace ",
      HtmlEscape(Str(m, "labtrace_version")),
      "\">\n<link rel=\"icon\" href=\"data:,\">\n<title>labtrace run ",
      HtmlEscape(run_id), "</title>\n<style>", kReportCss,
      "</style>\n</head>\n<body>\n<header><h1>labtrace run <code>",
      HtmlEscape(run_id), "</code></h1><span id=\"verdict\" class=\"verdict ",
      exit_code == 0 ? "good" : "bad", "\">exit ", exit_code, ": ",
      ExitCodeText(exit_code), "</span><span class=\"sub\">",
      HtmlEscape(Str(m, "started_at")), " &middot; ",
      HtmlEscape(HumanSeconds(Num(m, "duration_s", -1))), " &middot; labtrace ",
      HtmlEscape(Str(m, "labtrace_version")), "</span></header>\n<main>\n");
  absl::StrAppend(&o, StaticTop(m, model), kReportBody, StaticBottom(m, model));
  absl::StrAppend(&o,
                  "</main>\n<script type=\"application/json\" id=\"lt-data\">",
                  JsonForScript(data), "</script>\n<script>", script,
                  "</script>\n</body>\n</html>\n");
  return o;
}

absl::StatusOr<std::filesystem::path> WriteHtmlReport(
    const std::filesystem::path& run_dir) {
  absl::StatusOr<json> m = ReadRunManifest(run_dir);
  if (!m.ok()) return m.status();
  const std::filesystem::path path = run_dir / kReportFileName;
  if (absl::Status s = WriteFileAtomically(path, RenderHtmlReport(*m));
      !s.ok()) {
    return s;
  }
  return path;
}

}  // namespace labtrace::controller
