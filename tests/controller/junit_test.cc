#include "controller/report/junit.h"

#include "common/file_util.h"
#include "common/subprocess.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/testing/test_util.h"

namespace labtrace::controller {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;
using nlohmann::json;

// Validates `xml` against tests/controller/junit.xsd with lxml; "" if valid,
// else the validator's words. Skips (returns "skip") without lxml.
std::string Validate(const std::filesystem::path& xml) {
  subprocess::Options o;
  o.argv = {"/usr/bin/python3", "-c",
            "import sys\n"
            "try:\n  from lxml import etree\n"
            "except ImportError:\n  print('skip'); sys.exit(3)\n"
            "s = etree.XMLSchema(etree.parse(sys.argv[2]))\n"
            "d = etree.parse(sys.argv[1])\n"
            "if not s.validate(d):\n  print(s.error_log); sys.exit(1)\n",
            xml.string(),
            testing::SourcePath("tests/controller/junit.xsd").string()};
  subprocess::Result r = subprocess::Run(o);
  if (r.outcome == subprocess::Outcome::kExited && r.exit_code == 3) return "skip";
  return r.ok() ? "" : r.output;
}

json Manifest() {
  return json::parse(R"({
    "schema_version": 1, "run_id": "r<1>", "started_at": "2026-12-02T10:00:00.000Z",
    "duration_s": 12.5,
    "steps": [
      {"name": "setup_env", "phase": "setup", "skipped": false, "hosts": [
        {"host": "vm1", "outcome": "ok", "exit_code": 0, "duration_s": 1.25,
         "error": "", "trace_error": ""}]},
      {"name": "unit & \"io\"", "phase": "test", "skipped": false, "hosts": [
        {"host": "vm1", "outcome": "failed", "exit_code": 7, "duration_s": 2,
         "error": "command exited with code 7 <oops> \u0001", "trace_error": ""},
        {"host": "vm2", "outcome": "unreachable", "exit_code": -1,
         "duration_s": 3, "error": "connection refused", "trace_error": ""}]},
      {"name": "later", "phase": "test", "skipped": true, "hosts": []},
      {"name": "cleanup", "phase": "cleanup", "skipped": false, "hosts": [
        {"host": "vm1", "outcome": "ok", "exit_code": 0, "duration_s": 0.5,
         "error": "", "trace_error": "wpr: no space"}]}
    ],
    "files": [
      {"host": "vm1", "step": "unit & \"io\"", "file": "vm1/unit.etl", "backend": "wpr"},
      {"host": "vm1", "step": "unit & \"io\"", "file": "vm1/unit.log", "backend": "exec"},
      {"host": "vm1", "step": "setup_env", "file": "", "backend": "wpr",
       "object": {"url": "s3://b/r/vm1/setup.etl"}}
    ]
  })");
}

TEST(JUnitTest, OneTestcasePerStepAndHostValidAgainstTheSchema) {
  testing::TempDir dir;
  const auto run_dir = dir.path() / "runs" / "r1";
  std::filesystem::create_directories(run_dir / "vm1");
  testing::WriteTextFile(run_dir / "vm1" / "unit.log", "line one\nbroken <here>\n");
  testing::WriteTextFile(run_dir / "vm1" / "unit.etl", "etl");
  const auto junit = dir.path() / "junit.xml";
  ASSERT_TRUE(WriteJUnit(Manifest(), run_dir, junit).ok());
  const std::string x = testing::ReadTextFile(junit);

  EXPECT_THAT(x, HasSubstr("<testsuites name=\"labtrace run r&lt;1&gt;\" tests=\"5\" "
                           "failures=\"1\" errors=\"1\" skipped=\"1\""));
  EXPECT_THAT(x, HasSubstr("classname=\"test\" name=\"unit &amp; &quot;io&quot;@vm1\""));
  EXPECT_THAT(x, HasSubstr("type=\"exit code 7\""));
  EXPECT_THAT(x, HasSubstr("&lt;oops&gt; \xEF\xBF\xBD"));  // Control char replaced.
  EXPECT_THAT(x, HasSubstr("<error message=\"unreachable: connection refused\""));
  // The log in system-out, the files attached both ways, relative paths.
  EXPECT_THAT(x, HasSubstr("broken &lt;here&gt;"));
  EXPECT_THAT(x, HasSubstr("[[ATTACHMENT|runs/r1/vm1/unit.etl]]"));
  EXPECT_THAT(x, HasSubstr("<property name=\"attachment\" value=\"runs/r1/vm1/unit.etl\"/>"));
  // An object in the store is attached by its URL.
  EXPECT_THAT(x, HasSubstr("[[ATTACHMENT|s3://b/r/vm1/setup.etl]]"));
  EXPECT_THAT(x, HasSubstr("labtrace: wpr: no space"));
  EXPECT_THAT(x, Not(HasSubstr("\x01")));

  const std::string v = Validate(junit);
  if (v == "skip") GTEST_SKIP() << "python3-lxml is missing (deploy/install_deps.sh)";
  EXPECT_EQ(v, "");
}

TEST(JUnitTest, SchemaRejectsWhatCiSystemsWouldNot) {
  testing::TempDir dir;
  const auto bad = dir.path() / "bad.xml";
  // A testcase without a name, and a negative time.
  testing::WriteTextFile(bad,
                         "<?xml version=\"1.0\"?><testsuites><testsuite name=\"s\" "
                         "tests=\"1\" failures=\"0\" errors=\"0\"><testcase "
                         "classname=\"c\" time=\"-1\"/></testsuite></testsuites>");
  const std::string v = Validate(bad);
  if (v == "skip") GTEST_SKIP() << "python3-lxml is missing";
  EXPECT_NE(v, "");
}

TEST(JUnitTest, AttachmentsOutsideTheJUnitFolderAreAbsolute) {
  testing::TempDir dir;
  const auto run_dir = dir.path() / "runs" / "r1";
  const auto junit = dir.path() / "ci" / "out" / "junit.xml";
  const std::string x = RenderJUnit(Manifest(), run_dir, junit);
  EXPECT_THAT(x, HasSubstr("[[ATTACHMENT|" + (run_dir / "vm1" / "unit.etl").string() + "]]"));
}

}  // namespace
}  // namespace labtrace::controller
