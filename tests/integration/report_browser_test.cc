// The HTML run report in a real browser: a real run (two loopback agents
// with the fake wpr backend, step commands through /bin/sh) writes
// report.html; headless Chromium loads it, runs its script, and the test
// reads the DOM it dumps (lanes, bars, table rows, links, from the data-*
// counters the script fills, since bars on a canvas are not DOM), checks the
// console stayed silent and saves a screenshot. Then the same for a
// synthetic 1,000 hosts x 50 steps run (tests/tools/make_big_manifest.py),
// bounded in time. Skips when Chromium is missing (Debian: chromium).
//
// Screenshots and copies of the reports go to LABTRACE_REPORT_OUTPUT_DIR.

#include <chrono>
#include <cstdlib>
#include <fstream>
#include <iostream>
#include <map>
#include <regex>
#include <set>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "common/file_util.h"
#include "common/subprocess.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "tests/testing/test_util.h"

namespace labtrace {
namespace {

using nlohmann::json;
using ::testing::HasSubstr;
using ::testing::Not;

std::string ShellQuote(const std::string& s) {
  std::string out = "'";
  for (char c : s) {
    if (c == '\'') {
      out += "'\\''";
    } else {
      out += c;
    }
  }
  return out + "'";
}

struct Ran {
  int exit_code = -1;
  std::string out;  // stdout
  std::string err;  // stderr (or the merged output on a timeout)
  double seconds = 0;
};

// Runs argv through /bin/sh with stdout and stderr apart.
Ran Shell(const std::vector<std::string>& argv,
          const std::filesystem::path& tmp, std::chrono::seconds timeout) {
  static int n = 0;
  const auto out = tmp / ("out_" + std::to_string(++n));
  const auto err = tmp / ("err_" + std::to_string(n));
  std::string cmd = "exec";
  for (const auto& a : argv) cmd += " " + ShellQuote(a);
  cmd += " >" + ShellQuote(out.string()) + " 2>" + ShellQuote(err.string());
  subprocess::Options o;
  o.argv = {"/bin/sh", "-c", cmd};
  o.timeout = timeout;
  subprocess::Result r = subprocess::Run(o);
  Ran ran;
  ran.exit_code = r.outcome == subprocess::Outcome::kExited ? r.exit_code : -1;
  ran.out = testing::ReadTextFile(out);
  ran.err = std::filesystem::exists(err) ? testing::ReadTextFile(err) : "";
  if (r.outcome != subprocess::Outcome::kExited) {
    ran.err += absl::StrCat("\n[", subprocess::OutcomeName(r.outcome), "]");
  }
  ran.seconds = std::chrono::duration<double>(r.elapsed).count();
  return ran;
}

std::string Chromium() {
  if (const char* env = std::getenv("LABTRACE_CHROMIUM"); env && *env) {
    return env;
  }
  for (const char* p : {"/usr/bin/chromium", "/usr/bin/chromium-browser",
                        "/usr/bin/google-chrome"}) {
    if (std::filesystem::exists(p)) return p;
  }
  return "";
}

std::filesystem::path OutputDir() {
  std::filesystem::path d = LABTRACE_REPORT_OUTPUT_DIR;
  std::filesystem::create_directories(d);
  return d;
}

// What headless Chromium made of a page.
struct Loaded {
  std::string dom;
  std::vector<std::string> console;  // Every console message: none expected.
  std::map<std::string, std::string> stats;  // data-* of #lt-stats.
  double seconds = 0;
  std::string log;
};

Loaded Load(const std::filesystem::path& html, const std::filesystem::path& tmp,
            const std::filesystem::path& screenshot,
            std::chrono::seconds timeout) {
  testing::TempDir profile;
  const std::vector<std::string> common = {
      Chromium(),
      "--headless=new",
      "--no-sandbox",
      "--disable-gpu",
      "--no-first-run",
      "--disable-extensions",
      "--hide-scrollbars",
      "--user-data-dir=" + profile.path().string(),
      "--enable-logging=stderr",
      "--v=0"};
  const std::string url = "file://" + std::filesystem::absolute(html).string();
  std::vector<std::string> dump = common;
  dump.insert(dump.end(), {"--window-size=1400,1000", "--dump-dom", url});
  Ran r = Shell(dump, tmp, timeout);
  Loaded l;
  l.dom = r.out;
  l.log = r.err;
  l.seconds = r.seconds;
  for (absl::string_view line : absl::StrSplit(r.err, '\n')) {
    // Chromium logs every console message (log, warning, error, uncaught
    // exception, CSP violation) as ":CONSOLE". The report writes none.
    if (absl::StrContains(line, ":CONSOLE") ||
        absl::StrContains(line, "Uncaught")) {
      l.console.emplace_back(line);
    }
  }
  const std::size_t at = l.dom.find("<div id=\"lt-stats\"");
  if (at != std::string::npos) {
    const std::string tag = l.dom.substr(at, l.dom.find('>', at) - at);
    static const std::regex kAttr("data-([a-z-]+)=\"([^\"]*)\"");
    for (std::sregex_iterator it(tag.begin(), tag.end(), kAttr), end; it != end;
         ++it) {
      l.stats[(*it)[1]] = (*it)[2];
    }
  }
  if (!screenshot.empty()) {
    std::vector<std::string> shot = common;
    shot.insert(shot.end(), {"--window-size=1400,2200",
                             "--screenshot=" + screenshot.string(), url});
    Ran s = Shell(shot, tmp, timeout);
    EXPECT_EQ(s.exit_code, 0) << s.err;
  }
  return l;
}

int Stat(const Loaded& l, const std::string& key) {
  auto it = l.stats.find(key);
  return it == l.stats.end() ? -1 : std::atoi(it->second.c_str());
}

std::size_t Count(const std::string& text, const std::string& what) {
  std::size_t n = 0;
  for (std::size_t at = text.find(what); at != std::string::npos;
       at = text.find(what, at + 1)) {
    ++n;
  }
  return n;
}

std::string Between(const std::string& text, const std::string& open,
                    const std::string& close) {
  const std::size_t a = text.find(open);
  if (a == std::string::npos) return "";
  const std::size_t b = text.find(close, a + open.size());
  return b == std::string::npos
             ? ""
             : text.substr(a + open.size(), b - a - open.size());
}

std::string PercentDecode(const std::string& s) {
  std::string out;
  for (std::size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '%' && i + 2 < s.size()) {
      out.push_back(
          static_cast<char>(std::stoi(s.substr(i + 1, 2), nullptr, 16)));
      i += 2;
    } else {
      out.push_back(s[i]);
    }
  }
  return out;
}

class ReportBrowserTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (Chromium().empty()) {
      GTEST_SKIP() << "no Chromium (Debian package `chromium`; or set "
                      "LABTRACE_CHROMIUM)";
    }
  }
  testing::TempDir dir_;
};

constexpr char kPlan[] = R"yaml(
run: browserplan
hosts: "vm0,vm1"
defaults:
  profile: general
  timeout: 30s
  stop_timeout: 20s
setup:
  - name: setup_env
    command: [/bin/sh, -c, "echo setup"]
tests:
  - name: passing
    command: [/bin/sh, -c, "echo fine"]
  - name: failing
    command: [/bin/sh, -c, "echo '<b>broken</b>' >&2; exit 7"]
cleanup:
  - name: cleanup_env
    command: [/bin/sh, -c, "echo cleanup"]
)yaml";

TEST_F(ReportBrowserTest, ReportOfARealRunLoadsWithLanesBarsRowsAndLinks) {
  const std::filesystem::path etl =
      testing::TestdataEtl("s4_WindowsUpdate.20251008.140245.443.8.etl");
  if (etl.empty())
    GTEST_SKIP() << "../shared/testdata/etl is not beside this checkout";
  std::vector<std::unique_ptr<testing::AgentProcess>> agents;
  std::string inventory = "hosts:\n";
  for (int i = 0; i < 2; ++i) {
    const std::string name = "vm" + std::to_string(i);
    const auto state = dir_.path() / ("wpr_" + name);
    std::filesystem::create_directories(state);
    agents.push_back(
        std::make_unique<testing::AgentProcess>(testing::AgentProcess::Options{
            dir_.path() / ("data_" + name),
            "wpr:\n  path: " + testing::FakeWprBinary() +
                "\nprofiles:\n  - {name: general, backend: wpr, args: "
                "[GeneralProfile]}\nexec:\n  enabled: true\n  allow: "
                "[/bin/sh]\n",
            {"--log-level", "warn"},
            {"FAKE_WPR_STATE_DIR=" + state.string(),
             "FAKE_WPR_ETL_SOURCE=" + etl.string()}}));
    std::string error;
    ASSERT_TRUE(agents.back()->Start(&error)) << error;
    inventory += "  - {name: " + name + ", address: \"" +
                 agents.back()->address() + "\"}\n";
  }
  testing::WriteTextFile(dir_.path() / "inventory.yaml", inventory);
  testing::WriteTextFile(dir_.path() / "plan.yaml", kPlan);
  const auto out = dir_.path() / "runs";
  Ran run = Shell(
      {testing::ControllerBinary(), "run", (dir_.path() / "plan.yaml").string(),
       "--out", out.string(), "--run-id", "browser", "--inventory",
       (dir_.path() / "inventory.yaml").string()},
      dir_.path(), std::chrono::seconds(120));
  ASSERT_EQ(run.exit_code, 4) << run.err << run.out;  // `failing` exits 7.
  const auto run_dir = out / "browser";
  const auto html = run_dir / "report.html";
  EXPECT_THAT(run.out, HasSubstr("report:    " + html.string()));
  ASSERT_TRUE(std::filesystem::exists(html)) << run.out;

  // `labtrace report` rebuilds the same file.
  const std::string first = testing::ReadTextFile(html);
  std::filesystem::remove(html);
  const auto begun = std::chrono::steady_clock::now();
  Ran again = Shell({testing::ControllerBinary(), "report", run_dir.string()},
                    dir_.path(), std::chrono::seconds(60));
  const double render_ms = std::chrono::duration<double, std::milli>(
                               std::chrono::steady_clock::now() - begun)
                               .count();
  ASSERT_EQ(again.exit_code, 0) << again.err;
  EXPECT_EQ(again.out, "report: " + html.string() + "\n");
  EXPECT_EQ(testing::ReadTextFile(html), first);
  Ran missing = Shell({testing::ControllerBinary(), "report",
                       (dir_.path() / "nothing-here").string()},
                      dir_.path(), std::chrono::seconds(60));
  EXPECT_EQ(missing.exit_code, 2);
  EXPECT_THAT(missing.err, HasSubstr("no manifest.json in"));

  json m = json::parse(testing::ReadTextFile(run_dir / "manifest.json"));
  const std::size_t files = m["files"].size();
  EXPECT_EQ(files, 2u * 8);  // 4 steps x (trace + log) per host.

  // Keep the run (report and its files) beside the screenshot.
  const auto keep = OutputDir() / "small_run";
  std::filesystem::remove_all(keep);
  std::filesystem::copy(run_dir, keep,
                        std::filesystem::copy_options::recursive);
  Loaded l = Load(html, dir_.path(), OutputDir() / "small_run.png",
                  std::chrono::seconds(60));
  EXPECT_THAT(l.console, ::testing::IsEmpty()) << l.log;
  ASSERT_EQ(l.stats["ready"], "1") << l.log << l.dom.substr(0, 4000);
  EXPECT_EQ(Stat(l, "lanes"), 2);
  EXPECT_EQ(Stat(l, "drawn-lanes"), 2);
  EXPECT_EQ(Stat(l, "bars"), 8);
  EXPECT_EQ(Stat(l, "drawn-bars"), 8);
  EXPECT_EQ(Stat(l, "matrix-rows"), 2);
  EXPECT_EQ(Stat(l, "matrix-cells"), 8);
  EXPECT_EQ(Stat(l, "matrix-links"), 8);  // Every cell links to its trace.
  EXPECT_EQ(Stat(l, "file-rows"), static_cast<int>(files));
  EXPECT_EQ(Stat(l, "file-links"), static_cast<int>(files));
  // The rows and links are in the DOM, and every link is a file of the run.
  static const std::regex kFileRow("<tr[^>]* id=\"file-[0-9]+\"");
  EXPECT_EQ(static_cast<std::size_t>(std::distance(
                std::sregex_iterator(l.dom.begin(), l.dom.end(), kFileRow),
                std::sregex_iterator())),
            files);
  static const std::regex kHref("<a href=\"([^\"]+)\"");
  std::set<std::string> links;
  for (std::sregex_iterator it(l.dom.begin(), l.dom.end(), kHref), end;
       it != end; ++it) {
    links.insert((*it)[1]);
  }
  EXPECT_TRUE(links.count("manifest.json"));
  std::size_t file_links = 0;
  for (const std::string& href : links) {
    if (href == "manifest.json") continue;
    EXPECT_TRUE(std::filesystem::exists(run_dir / PercentDecode(href))) << href;
    ++file_links;
  }
  EXPECT_EQ(file_links, files);
  // The step's stderr never became markup; the failure is in the summary.
  EXPECT_THAT(l.dom, Not(HasSubstr("<b>broken")));
  EXPECT_THAT(l.dom, HasSubstr("id=\"failed-steps\""));
  EXPECT_THAT(l.dom, HasSubstr("exit 4: some step failed"));

  // Hover: a copy of the report with a probe script (and without the CSP
  // that would refuse it) moves the mouse along each lane and keeps every
  // tooltip it sees.
  std::string probe = first;
  const std::size_t csp =
      probe.find("<meta http-equiv=\"Content-Security-Policy\"");
  ASSERT_NE(csp, std::string::npos);
  probe.erase(csp, probe.find('>', csp) + 1 - csp);
  probe.insert(probe.rfind("</body>"), R"html(<script>
(function () {
  var c = document.getElementById('tl-canvas');
  var tip = document.getElementById('tooltip');
  var r = c.getBoundingClientRect(), seen = {};
  for (var lane = 0; lane < 2; ++lane) {
    var y = r.top + 24 + lane * 18 + 9;
    for (var x = r.left + 171; x < r.right; x += 1) {
      c.dispatchEvent(new MouseEvent('mousemove',
          {clientX: x, clientY: y, bubbles: true}));
      if (!tip.hidden) seen[tip.textContent] = 1;
    }
  }
  var out = document.createElement('pre');
  out.id = 'probe';
  out.textContent = Object.keys(seen).join('\n----\n');
  document.body.appendChild(out);
})();
</script>
)html");
  testing::WriteTextFile(run_dir / "probe.html", probe);
  Loaded p =
      Load(run_dir / "probe.html", dir_.path(), {}, std::chrono::seconds(60));
  const std::string tips = Between(p.dom, "<pre id=\"probe\">", "</pre>");
  EXPECT_EQ(Count(tips, "----") + 1, 8u) << tips;  // Every bar, once.
  EXPECT_THAT(tips,
              HasSubstr("failing (test) on vm0\noutcome: failed, exit code 7"));
  EXPECT_THAT(tips,
              HasSubstr("setup_env (setup) on vm1\noutcome: ok, exit code 0"));
  EXPECT_THAT(tips, HasSubstr("file: vm0/failing_"));
  EXPECT_THAT(tips, HasSubstr("duration "));
  EXPECT_THAT(tips, HasSubstr("error: command exited with code 7"));

  std::cout << "small run: render " << render_ms << " ms (labtrace report), "
            << first.size() << " bytes, chromium dump-dom " << l.seconds
            << " s, script " << l.stats["render-ms"] << " ms; screenshot "
            << (OutputDir() / "small_run.png").string() << "\n";
  RecordProperty("small_report_bytes", static_cast<int>(first.size()));
}

TEST_F(ReportBrowserTest, ThousandHostsByFiftyStepsStaysUsable) {
  if (!std::filesystem::exists("/usr/bin/python3")) {
    GTEST_SKIP() << "no /usr/bin/python3 for make_big_manifest.py";
  }
  const auto run_dir = dir_.path() / "big";
  Ran made =
      Shell({"/usr/bin/python3",
             testing::SourcePath("tests/tools/make_big_manifest.py").string(),
             run_dir.string(), "--hosts", "1000", "--steps", "50"},
            dir_.path(), std::chrono::seconds(120));
  ASSERT_EQ(made.exit_code, 0) << made.err;
  json m = json::parse(testing::ReadTextFile(run_dir / "manifest.json"));
  int bars = 0;  // Every host-step that ran (lost hosts skip the rest).
  for (const json& s : m["steps"]) {
    for (const json& h : s["hosts"]) bars += h["outcome"] != "skipped";
  }

  // ~1.6 s in a release build; ~31 s under ASan (Debug), more on a busy
  // machine: the limit only catches a hang.
  Ran report = Shell({testing::ControllerBinary(), "report", run_dir.string()},
                     dir_.path(), std::chrono::seconds(240));
  ASSERT_EQ(report.exit_code, 0) << report.err;
  const auto html = run_dir / "report.html";
  const std::uintmax_t size = std::filesystem::file_size(html);
  EXPECT_LT(size, 40u << 20);  // About 17 MB; the manifest is 75 MB.

  // Bounded: a report that froze the browser would hit this.
  Loaded l = Load(html, dir_.path(), OutputDir() / "big_1000x50.png",
                  std::chrono::seconds(120));
  EXPECT_THAT(l.console, ::testing::IsEmpty()) << l.log;
  ASSERT_EQ(l.stats["ready"], "1") << l.log;
  EXPECT_EQ(Stat(l, "hosts"), 1000);
  EXPECT_EQ(Stat(l, "steps"), 50);
  EXPECT_EQ(Stat(l, "lanes"), 1000);
  EXPECT_EQ(Stat(l, "bars"), bars);
  EXPECT_EQ(Stat(l, "files"), static_cast<int>(m["files"].size()));
  // Only what is in view is drawn, and the DOM stays small.
  EXPECT_GT(Stat(l, "drawn-bars"), 0);
  EXPECT_LT(Stat(l, "drawn-lanes"), 60);
  EXPECT_EQ(Stat(l, "matrix-rows"), 50);
  EXPECT_EQ(Stat(l, "file-rows"), 100);
  EXPECT_LT(Count(l.dom, "<tr"), 1000u);
  EXPECT_LT(Stat(l, "render-ms"), 10000);
  EXPECT_LT(l.seconds, 60);
  // The hostile host name and error stayed text.
  EXPECT_THAT(l.dom,
              HasSubstr("vm-&lt;script&gt;alert('host')&lt;/script&gt;"));
  EXPECT_THAT(l.dom, Not(HasSubstr("<img")));
  std::cout << "1000x50: labtrace report " << report.seconds << " s, " << size
            << " bytes, chromium dump-dom " << l.seconds << " s, script "
            << l.stats["render-ms"] << " ms; screenshot "
            << (OutputDir() / "big_1000x50.png").string() << "\n";
  RecordProperty("big_report_bytes", static_cast<int>(size));
}

}  // namespace
}  // namespace labtrace
