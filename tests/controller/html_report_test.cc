#include "controller/report/html_report.h"

#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "common/file_util.h"
#include "controller/plan/plan_runner.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/testing/test_util.h"

namespace labtrace::controller {
namespace {

using nlohmann::json;
using ::testing::HasSubstr;
using ::testing::Not;

std::size_t Count(const std::string& text, const std::string& what) {
  std::size_t n = 0;
  for (std::size_t at = text.find(what); at != std::string::npos;
       at = text.find(what, at + 1)) {
    ++n;
  }
  return n;
}

// The text between `open` and the next `close`.
std::string Between(const std::string& text, const std::string& open,
                    const std::string& close) {
  const std::size_t a = text.find(open);
  if (a == std::string::npos) return "";
  const std::size_t b = text.find(close, a + open.size());
  return b == std::string::npos
             ? ""
             : text.substr(a + open.size(), b - a - open.size());
}

json EmbeddedData(const std::string& html) {
  return json::parse(
      Between(html, "<script type=\"application/json\" id=\"lt-data\">",
              "</script>"),
      nullptr, false);
}

// A manifest whose untrusted strings try to break out of every context.
json HostileManifest() {
  return json::parse(R"json({
    "schema_version": 1, "labtrace_version": "1.2.3", "run_id": "r1",
    "command_line": ["labtrace", "run", "p.yaml", "--out", "it's here"],
    "plan": {"run": "p", "source": "p.yaml", "keep": "always"},
    "started_at": "2026-12-02T10:00:00.000Z", "ended_at": "2026-12-02T10:01:00.000Z",
    "duration_s": 60, "interrupted": false, "exit_code": 4,
    "lost_hosts": [], "lost_events": true,
    "warnings": ["<b>bold</b> warning & more"],
    "sync_start": false, "clock_offsets": {},
    "steps": [
      {"name": "setup", "phase": "setup", "profile": "p", "command": [],
       "run_on": "agent", "passed": true, "skipped": false,
       "started_at": "2026-12-02T10:00:01.000Z", "ended_at": "2026-12-02T10:00:05.000Z",
       "sync_instant": null, "start_spread_ms": 0,
       "hosts": [
        {"host": "vm<script>alert(1)</script>", "outcome": "ok", "exit_code": 0,
         "command_timed_out": false, "duration_s": 4, "error": "", "trace_error": "",
         "trace_started_at": "2026-12-02T10:00:01.250000Z", "artifacts": ["a1"]}]},
      {"name": "unit", "phase": "test", "profile": "p", "command": [],
       "run_on": "agent", "passed": false, "skipped": false,
       "started_at": "2026-12-02T10:00:06.000Z", "ended_at": "2026-12-02T10:00:50.000Z",
       "sync_instant": null, "start_spread_ms": 0,
       "hosts": [
        {"host": "vm<script>alert(1)</script>", "outcome": "failed", "exit_code": 7,
         "command_timed_out": false, "duration_s": 44,
         "error": "</script><script>alert('x')</script><!-- \u2028 <img src=x onerror=alert(2)>",
         "trace_error": "", "trace_started_at": null, "artifacts": []}]}
    ],
    "files": [
      {"host": "vm<script>alert(1)</script>", "step": "setup", "phase": "setup",
       "artifact_id": "a1", "file": "vm<script>/set up#1.etl", "backend": "wpr",
       "size_bytes": 2048, "sha256": "ab", "status": "collected", "error": "",
       "object": null, "auto_stopped": false,
       "summary": {"format": "etl", "file_size": 2048, "events_lost": 41,
                   "buffers_lost": 0, "record_count": 1, "problems": ["41 events lost"]}},
      {"host": "vm2", "step": "unit", "phase": "test", "artifact_id": "a2",
       "file": "javascript:alert(3)", "backend": "wpr", "size_bytes": 1,
       "sha256": "", "status": "collected", "error": "", "object": null,
       "auto_stopped": false, "summary": null}
    ],
    "deleted_on_agents": []
  })json");
}

TEST(HtmlEscapeTest, EscapesMarkupAndReplacesWhatHtmlCannotCarry) {
  EXPECT_EQ(HtmlEscape("<a href=\"x\">&'</a>"),
            "&lt;a href=&quot;x&quot;&gt;&amp;&#39;&lt;/a&gt;");
  EXPECT_EQ(HtmlEscape("tab\there\nline"), "tab\there\nline");
  EXPECT_EQ(HtmlEscape(std::string("nul\0bell\x07", 9)),
            "nul\xEF\xBF\xBD"
            "bell\xEF\xBF\xBD");
  EXPECT_EQ(HtmlEscape("caf\xC3\xA9 \xE2\x9C\x93"), "caf\xC3\xA9 \xE2\x9C\x93");
  EXPECT_EQ(HtmlEscape("bad \xC3 \xFF end"),
            "bad \xEF\xBF\xBD \xEF\xBF\xBD end");
}

TEST(RelativeFileUrlTest, EncodesSegmentsAndRefusesEscapes) {
  EXPECT_EQ(RelativeFileUrl("vm1/unit_tests_20261122_014205.etl"),
            "vm1/unit_tests_20261122_014205.etl");
  EXPECT_EQ(RelativeFileUrl("vm 1/a#b?c%.etl"), "vm%201/a%23b%3Fc%25.etl");
  EXPECT_EQ(RelativeFileUrl("vm1\\x.etl"), "vm1/x.etl");
  EXPECT_EQ(RelativeFileUrl("javascript:alert(1)"),
            "javascript%3Aalert%281%29");
  EXPECT_EQ(RelativeFileUrl("h\xC3\xA9/\"<x>"), "h%C3%A9/%22%3Cx%3E");
  EXPECT_EQ(RelativeFileUrl(""), "");
  EXPECT_EQ(RelativeFileUrl("../outside.etl"), "");
  EXPECT_EQ(RelativeFileUrl("vm1/../../x"), "");
  EXPECT_EQ(RelativeFileUrl("/etc/passwd"), "");
  EXPECT_EQ(RelativeFileUrl("C:\\traces\\x.etl"), "");
}

TEST(JsonForScriptTest, CannotCloseItsElementAndParsesBack) {
  json j = {{"s", "</script><!-- <b> & \xE2\x80\xA8 \xE2\x80\xA9 end"},
            {"n", 1}};
  const std::string text = JsonForScript(j);
  EXPECT_EQ(text.find('<'), std::string::npos) << text;
  EXPECT_EQ(text.find('>'), std::string::npos) << text;
  EXPECT_EQ(text.find("\xE2\x80\xA8"), std::string::npos) << text;
  EXPECT_EQ(text.find("\xE2\x80\xA9"), std::string::npos) << text;
  EXPECT_EQ(json::parse(text), j);
  // Invalid UTF-8 does not throw; it is replaced.
  EXPECT_THAT(JsonForScript(json("a\xFF"
                                 "b")),
              HasSubstr("a\xEF\xBF\xBD"
                        "b"));
}

TEST(HtmlReportTest, UntrustedStringsNeverBecomeMarkup) {
  const std::string html = RenderHtmlReport(HostileManifest());
  // Exactly our two script elements: the data and the code.
  EXPECT_EQ(Count(html, "<script"), 2u) << html;
  EXPECT_EQ(Count(html, "</script"), 2u);
  EXPECT_THAT(html, Not(HasSubstr("<img")));
  EXPECT_THAT(html, Not(HasSubstr("<b>bold")));
  EXPECT_THAT(html, Not(HasSubstr("<!-- ")));
  EXPECT_THAT(html, HasSubstr("vm&lt;script&gt;alert(1)&lt;/script&gt;"));
  EXPECT_THAT(html, HasSubstr("&lt;b&gt;bold&lt;/b&gt; warning &amp; more"));
  EXPECT_THAT(html,
              HasSubstr("&lt;/script&gt;&lt;script&gt;alert(&#39;x&#39;)"));
  // The data survives the trip intact.
  json data = EmbeddedData(html);
  ASSERT_TRUE(data.is_object()) << html;
  EXPECT_EQ(data["hosts"][0], "vm<script>alert(1)</script>");
  bool found = false;
  for (const json& s : data["str"]) {
    found |= s ==
             "</script><script>alert('x')</script><!-- \xE2\x80\xA8 "
             "<img src=x onerror=alert(2)>";
  }
  EXPECT_TRUE(found) << data["str"].dump();
  // Links: percent-encoded, relative; "javascript:" is only a file name.
  EXPECT_EQ(data["files"][0][4], "vm%3Cscript%3E/set%20up%231.etl");
  EXPECT_EQ(data["files"][1][4], "javascript%3Aalert%283%29");
  // The command line, quoted to paste.
  EXPECT_THAT(
      html,
      HasSubstr(
          "labtrace run p.yaml --out &#39;it&#39;\\&#39;&#39;s here&#39;"));
}

TEST(HtmlReportTest, ContentSecurityPolicyAllowsExactlyOurScript) {
  const std::string html = RenderHtmlReport(HostileManifest());
  const std::string csp = Between(html, "script-src ", "\"");
  const std::string code = Between(html, "</script>\n<script>", "</script>");
  ASSERT_FALSE(code.empty());
  const std::string hex = Sha256Hex(code);
  const std::string digest = absl::HexStringToBytes(hex);
  EXPECT_EQ(csp, "'sha256-" + absl::Base64Escape(digest) + "'");
  EXPECT_THAT(html, HasSubstr("default-src 'none'"));
}

TEST(HtmlReportTest, StaticSummaryCountsAndFailedSteps) {
  const std::string html = RenderHtmlReport(HostileManifest());
  EXPECT_THAT(html, HasSubstr("<h2>Warnings (1)</h2>"));
  EXPECT_THAT(html, HasSubstr("<b>1</b><span>steps failed</span>"));
  EXPECT_THAT(html, HasSubstr("id=\"failed-steps\""));
  EXPECT_THAT(html, HasSubstr("1 failed"));
  EXPECT_THAT(html, HasSubstr("exit 4: some step failed"));
  EXPECT_THAT(html, HasSubstr("<noscript>"));
  // Warnings come before everything else in the body.
  EXPECT_LT(html.find("id=\"warnings\""), html.find("id=\"summary\""));
  json data = EmbeddedData(html);
  ASSERT_EQ(data["steps"].size(), 2u);
  // A host's trace start is used when known (ms from the run's start).
  EXPECT_EQ(data["cells"][0][3], 1250);
  EXPECT_EQ(data["cells"][0][4], 4000);
  EXPECT_EQ(data["cells"][0][7], 0);  // Its trace file.
  EXPECT_TRUE(data["cells"][1][3].is_null());
}

TEST(HtmlReportTest, EmptyRunAndMissingFieldsRender) {
  const std::string empty = RenderHtmlReport(json::parse(R"({
    "schema_version": 1, "run_id": "nothing", "steps": [], "files": [],
    "warnings": [], "exit_code": 0})"));
  EXPECT_THAT(empty, HasSubstr("<b>0</b><span>hosts</span>"));
  EXPECT_THAT(empty, HasSubstr("exit 0: ok"));
  EXPECT_THAT(empty, Not(HasSubstr("id=\"warnings\"")));
  EXPECT_THAT(empty, Not(HasSubstr("id=\"failed-steps\"")));
  EXPECT_TRUE(EmbeddedData(empty).is_object());
  // Wrong types everywhere: still a document, no crash.
  const std::string odd = RenderHtmlReport(json::parse(R"({
    "steps": [1, {"hosts": "x", "name": 3}], "files": {"a": 1},
    "warnings": [7, "w"], "duration_s": "long"})"));
  EXPECT_THAT(odd, HasSubstr("</html>"));
  EXPECT_TRUE(EmbeddedData(odd).is_object());
}

TEST(HtmlReportTest, LongErrorsAreCutOnACharacterBoundary) {
  json m = HostileManifest();
  std::string err;
  while (err.size() < 10000) err += "\xC3\xA9";  // 2-byte characters.
  m["steps"][1]["hosts"][0]["error"] = "x" + err;
  json data = EmbeddedData(RenderHtmlReport(m));
  bool cut = false;
  for (const json& s : data["str"]) {
    const std::string t = s.get<std::string>();
    if (t.rfind("x\xC3\xA9", 0) == 0) {
      cut = true;
      EXPECT_LT(t.size(), 4200u);
      EXPECT_THAT(t, HasSubstr("more bytes in manifest.json"));
      EXPECT_EQ(t.find("\xEF\xBF\xBD"), std::string::npos);  // Not split.
    }
  }
  EXPECT_TRUE(cut);
}

TEST(HtmlReportTest, RendersWhatTheRunnerWrites) {
  testing::TempDir dir;
  Plan plan;
  plan.run = "nightly";
  plan.source = "plan.yaml";
  RunResult r;
  r.run_id = "nightly-1";
  r.run_dir = dir.path();
  r.command_line = {"labtrace", "run", "plan.yaml"};
  r.started = absl::FromUnixSeconds(1800000000);
  r.ended = r.started + absl::Seconds(30);
  r.exit_code = 4;
  StepResult s;
  s.step.name = "unit_tests";
  s.step.phase = "test";
  s.started = r.started + absl::Seconds(1);
  s.ended = r.started + absl::Seconds(20);
  StepHostResult h;
  h.host = "vm1";
  h.outcome = "failed";
  h.exit_code = 3;
  h.duration = absl::Seconds(19);
  h.error = "boom";
  h.trace_started = s.started + absl::Milliseconds(5);
  s.hosts.push_back(h);
  r.steps.push_back(s);
  ASSERT_TRUE(WriteRunManifest(plan, r, dir.path() / "manifest.json").ok());

  absl::StatusOr<std::filesystem::path> html = WriteHtmlReport(dir.path());
  ASSERT_TRUE(html.ok()) << html.status();
  EXPECT_EQ(*html, dir.path() / "report.html");
  const std::string text = testing::ReadTextFile(*html);
  EXPECT_THAT(text, HasSubstr("labtrace run <code>nightly-1</code>"));
  EXPECT_THAT(text, HasSubstr("unit_tests"));
  EXPECT_THAT(text, HasSubstr("boom"));
  json data = EmbeddedData(text);
  EXPECT_EQ(data["cells"][0][2], 3);     // Exit code.
  EXPECT_EQ(data["cells"][0][3], 1005);  // Trace start, ms after the run's.
  EXPECT_EQ(data["t0"], 1800000000000LL);
}

TEST(HtmlReportTest, MissingOrBrokenManifestIsAClearError) {
  testing::TempDir dir;
  absl::StatusOr<std::filesystem::path> none = WriteHtmlReport(dir.path());
  ASSERT_FALSE(none.ok());
  EXPECT_TRUE(absl::IsNotFound(none.status())) << none.status();
  EXPECT_THAT(none.status().message(), HasSubstr("no manifest.json in"));
  EXPECT_THAT(none.status().message(), HasSubstr("<out>/<run_id>"));
  EXPECT_FALSE(std::filesystem::exists(dir.path() / "report.html"));

  absl::StatusOr<std::filesystem::path> gone =
      WriteHtmlReport(dir.path() / "no-such-run");
  ASSERT_FALSE(gone.ok());
  EXPECT_THAT(gone.status().message(), HasSubstr("(no such folder)"));

  testing::WriteTextFile(dir.path() / "manifest.json",
                         "{\"schema_version\": 1, ");
  absl::StatusOr<std::filesystem::path> cut = WriteHtmlReport(dir.path());
  ASSERT_FALSE(cut.ok());
  EXPECT_TRUE(absl::IsInvalidArgument(cut.status())) << cut.status();
  EXPECT_THAT(cut.status().message(), HasSubstr("not valid JSON"));

  testing::WriteTextFile(dir.path() / "manifest.json",
                         "{\"schema_version\": 2, \"steps\": []}");
  absl::StatusOr<std::filesystem::path> newer = WriteHtmlReport(dir.path());
  ASSERT_FALSE(newer.ok());
  EXPECT_TRUE(absl::IsFailedPrecondition(newer.status())) << newer.status();
  EXPECT_THAT(newer.status().message(), HasSubstr("schema_version 2"));
}

}  // namespace
}  // namespace labtrace::controller
