#include "controller/report/junit.h"

#include <fstream>
#include <map>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "common/file_util.h"

namespace labtrace::controller {
namespace {

using nlohmann::json;

constexpr std::size_t kMaxLog = 64 * 1024;  // Per testcase's system-out.

std::string Str(const json& j, const char* key) {
  auto it = j.find(key);
  return it != j.end() && it->is_string() ? it->get<std::string>() : "";
}

double Num(const json& j, const char* key) {
  auto it = j.find(key);
  return it != j.end() && it->is_number() ? it->get<double>() : 0.0;
}

// The tail of a log file, at most kMaxLog bytes.
std::string ReadTail(const std::filesystem::path& p) {
  std::ifstream in(p, std::ios::binary | std::ios::ate);
  if (!in) return "";
  const std::streamoff size = in.tellg();
  const std::streamoff from =
      size > static_cast<std::streamoff>(kMaxLog) ? size - kMaxLog : 0;
  in.seekg(from);
  std::string s(static_cast<std::size_t>(size - from), '\0');
  in.read(s.data(), static_cast<std::streamsize>(s.size()));
  return from > 0 ? absl::StrCat("[... first ", from, " bytes left out]\n", s) : s;
}

}  // namespace

std::string XmlEscape(const std::string& s) {
  std::string out;
  out.reserve(s.size());
  for (std::size_t i = 0; i < s.size(); ++i) {
    const unsigned char c = static_cast<unsigned char>(s[i]);
    switch (c) {
      case '&': out += "&amp;"; break;
      case '<': out += "&lt;"; break;
      case '>': out += "&gt;"; break;
      case '"': out += "&quot;"; break;
      case '\'': out += "&apos;"; break;
      default:
        if (c < 0x20 && c != '\t' && c != '\n' && c != '\r') {
          out += "\xEF\xBF\xBD";  // U+FFFD: XML 1.0 cannot carry it.
        } else {
          out.push_back(static_cast<char>(c));
        }
    }
  }
  return out;
}

std::string RenderJUnit(const json& m, const std::filesystem::path& run_dir,
                        const std::filesystem::path& junit_path) {
  // Attachments relative to the JUnit file when the run folder is below it.
  std::error_code ec;
  const std::filesystem::path base =
      std::filesystem::absolute(junit_path, ec).parent_path();
  const std::filesystem::path abs_run = std::filesystem::absolute(run_dir, ec);
  auto attachment_path = [&](const std::string& rel) {
    const std::filesystem::path p = abs_run / PathFromUtf8(rel);
    const std::filesystem::path r = p.lexically_relative(base);
    if (!r.empty() && *r.begin() != "..") return PathToUtf8(r);
    return PathToUtf8(p);
  };
  // Files by (host, step).
  std::map<std::pair<std::string, std::string>, std::vector<const json*>> files;
  if (m.contains("files") && m["files"].is_array()) {
    for (const json& f : m["files"]) {
      files[{Str(f, "host"), Str(f, "step")}].push_back(&f);
    }
  }
  const std::string run_id = Str(m, "run_id");
  struct Suite {
    std::string body;
    int tests = 0, failures = 0, errors = 0, skipped = 0;
    double time = 0;
  };
  std::map<std::string, Suite> suites;  // By phase.
  const std::vector<std::string> order = {"setup", "test", "cleanup"};
  const json steps = m.value("steps", json::array());
  for (const json& step : steps) {
    const std::string phase = Str(step, "phase");
    const std::string name = Str(step, "name");
    Suite& suite = suites[phase];
    const json hosts = step.value("hosts", json::array());
    if (step.value("skipped", false) || hosts.empty()) {
      ++suite.tests;
      ++suite.skipped;
      absl::StrAppend(&suite.body, "    <testcase classname=\"", XmlEscape(phase),
                      "\" name=\"", XmlEscape(name), "\" time=\"0\">\n",
                      "      <skipped message=\"skipped: an earlier step failed, "
                      "a host was lost or the run was interrupted\"/>\n",
                      "    </testcase>\n");
      continue;
    }
    for (const json& h : hosts) {
      const std::string host = Str(h, "host");
      const std::string outcome = Str(h, "outcome");
      const double secs = Num(h, "duration_s");
      ++suite.tests;
      suite.time += secs;
      std::string tc = absl::StrFormat(
          "    <testcase classname=\"%s\" name=\"%s\" time=\"%.3f\">\n",
          XmlEscape(phase), XmlEscape(absl::StrCat(name, "@", host)), secs);
      const int exit_code = h.value("exit_code", -1);
      const std::string error = Str(h, "error");
      if (outcome == "failed") {
        ++suite.failures;
        const std::string message =
            error.empty() ? absl::StrCat("exit code ", exit_code) : error;
        absl::StrAppend(&tc, "      <failure message=\"", XmlEscape(message),
                        "\" type=\"",
                        exit_code >= 0 ? absl::StrCat("exit code ", exit_code)
                                       : std::string("failed"),
                        "\">", XmlEscape(message), "</failure>\n");
      } else if (outcome != "ok") {
        // unreachable, timed_out, interrupted: the step could not be judged.
        ++suite.errors;
        absl::StrAppend(&tc, "      <error message=\"",
                        XmlEscape(absl::StrCat(outcome, ": ", error)),
                        "\" type=\"", XmlEscape(outcome), "\">",
                        XmlEscape(error), "</error>\n");
      }
      std::string out;
      std::vector<std::string> attachments;
      for (const json* f : files[{host, name}]) {
        const std::string rel = Str(*f, "file");
        const std::string where =
            !rel.empty() ? attachment_path(rel)
                         : (f->contains("object") && (*f)["object"].is_object()
                                ? Str((*f)["object"], "url")
                                : "");
        if (where.empty()) continue;
        if (Str(*f, "backend") == "exec" && !rel.empty()) {
          absl::StrAppend(&out, ReadTail(abs_run / PathFromUtf8(rel)));
          if (!out.empty() && out.back() != '\n') out.push_back('\n');
        }
        attachments.push_back(where);
      }
      if (!Str(h, "trace_error").empty()) {
        absl::StrAppend(&out, "labtrace: ", Str(h, "trace_error"), "\n");
      }
      if (!attachments.empty()) {
        absl::StrAppend(&tc, "      <properties>\n");
        for (const std::string& a : attachments) {
          absl::StrAppend(&tc, "        <property name=\"attachment\" value=\"",
                          XmlEscape(a), "\"/>\n");
        }
        absl::StrAppend(&tc, "      </properties>\n");
      }
      for (const std::string& a : attachments) {
        absl::StrAppend(&out, "[[ATTACHMENT|", a, "]]\n");
      }
      if (!out.empty()) {
        absl::StrAppend(&tc, "      <system-out>", XmlEscape(out),
                        "</system-out>\n");
      }
      absl::StrAppend(&tc, "    </testcase>\n");
      suite.body += tc;
    }
  }
  // The run's time is its wall time (duration_s), not the sum of steps.
  int tests = 0, failures = 0, errors = 0, skipped = 0;
  std::string body;
  for (const std::string& phase : order) {
    auto it = suites.find(phase);
    if (it == suites.end()) continue;
    const Suite& s = it->second;
    tests += s.tests;
    failures += s.failures;
    errors += s.errors;
    skipped += s.skipped;
    absl::StrAppend(
        &body,
        absl::StrFormat("  <testsuite name=\"%s\" tests=\"%d\" failures=\"%d\" "
                        "errors=\"%d\" skipped=\"%d\" time=\"%.3f\" "
                        "timestamp=\"%s\">\n",
                        XmlEscape(absl::StrCat(run_id, ".", phase)), s.tests,
                        s.failures, s.errors, s.skipped, s.time,
                        XmlEscape(Str(m, "started_at"))),
        s.body, "  </testsuite>\n");
  }
  return absl::StrCat(
      "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n",
      absl::StrFormat("<testsuites name=\"%s\" tests=\"%d\" failures=\"%d\" "
                      "errors=\"%d\" skipped=\"%d\" time=\"%.3f\">\n",
                      XmlEscape(absl::StrCat("labtrace run ", run_id)), tests,
                      failures, errors, skipped, Num(m, "duration_s")),
      body, "</testsuites>\n");
}

absl::Status WriteJUnit(const json& manifest,
                        const std::filesystem::path& run_dir,
                        const std::filesystem::path& junit_path) {
  if (junit_path.has_parent_path()) {
    if (absl::Status s = EnsureDirectory(junit_path.parent_path()); !s.ok())
      return s;
  }
  return WriteFileAtomically(junit_path,
                             RenderJUnit(manifest, run_dir, junit_path));
}

}  // namespace labtrace::controller
