// Egress to a real S3 server: a one-node Ceph RADOS Gateway started by
// deploy/object-store/local-s3.sh (Debian's ceph + radosgw packages). Agents
// (fake wpr, real files) upload; every object's bytes and digest are checked
// with an independent client (boto3); faults: refused credentials, a missing
// bucket, a stopped gateway, then a resumed upload. Skips, with the reason,
// where the gateway cannot start.

#include <signal.h>

#include <fstream>
#include <map>
#include <random>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "common/file_util.h"
#include "controller/egress/s3.h"
#include "common/subprocess.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "tests/testing/test_util.h"

namespace labtrace {
namespace {

using ::testing::HasSubstr;
using nlohmann::json;

struct Result {
  int exit_code = -1;
  std::string out, err;
  json Json() const { return json::parse(out, nullptr, false); }
};

std::string Quote(const std::string& s) {
  std::string out = "'";
  for (char c : s) out += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return out + "'";
}

// Runs a shell command line; stdout and stderr apart.
Result Shell(const std::string& cmd, const std::filesystem::path& scratch,
          std::chrono::seconds timeout = std::chrono::seconds(180)) {
  static int n = 0;
  const auto out = scratch / ("out_" + std::to_string(++n));
  subprocess::Options o;
  o.argv = {"/bin/sh", "-c", "exec " + cmd + " >" + Quote(out.string())};
  o.timeout = timeout;
  o.output_cap = 1 << 20;
  subprocess::Result r = subprocess::Run(o);
  Result x;
  x.exit_code = r.outcome == subprocess::Outcome::kExited ? r.exit_code : -1;
  x.err = r.output;
  x.out = testing::ReadTextFile(out);
  return x;
}

class S3EgressTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new testing::TempDir();
    if (!std::filesystem::exists("/usr/bin/radosgw") ||
        !std::filesystem::exists("/usr/bin/ceph-osd")) {
      skip_ = "Ceph's radosgw is not installed (bash deploy/install_deps.sh)";
      return;
    }
    if (Shell("python3 -c 'import boto3'", dir_->path()).exit_code != 0) {
      skip_ = "python3-boto3 is not installed (bash deploy/install_deps.sh)";
      return;
    }
    etl_ = testing::TestdataEtl("s4_WindowsUpdate.20251008.140245.443.8.etl");
    if (etl_.empty()) {
      skip_ = "../shared/testdata/etl is not beside this checkout";
      return;
    }
    s3_script_ = testing::SourcePath("deploy/object-store/local-s3.sh").string();
    Result started = Shell(S3Env() + " bash " + Quote(s3_script_) + " start",
                        dir_->path());
    if (started.exit_code != 0) {
      skip_ = "the RADOS Gateway did not start here: " +
              started.err.substr(started.err.size() > 600
                                     ? started.err.size() - 600
                                     : 0);
      return;
    }
    for (absl::string_view line : absl::StrSplit(started.out, '\n')) {
      if (!absl::ConsumePrefix(&line, "export ")) continue;
      const size_t eq = line.find('=');
      if (eq != absl::string_view::npos)
        env_[std::string(line.substr(0, eq))] = std::string(line.substr(eq + 1));
    }
    // A large file (12 MiB: 3 parts of 5 MiB with the part size below)
    // for multipart uploads.
    big_ = dir_->path() / "big.etl";
    {
      std::ofstream f(big_, std::ios::binary);
      std::mt19937_64 rng(42);
      std::string chunk(1 << 20, '\0');
      for (int i = 0; i < 12; ++i) {
        for (char& c : chunk) c = static_cast<char>(rng());
        f.write(chunk.data(), static_cast<std::streamsize>(chunk.size()));
      }
    }
    std::string inventory = "hosts:\n";
    for (int i = 0; i < 2; ++i) {
      const std::string name = "vm" + std::to_string(i);
      auto state = dir_->path() / ("wpr_" + name);
      std::filesystem::create_directories(state);
      std::string cfg = "wpr:\n  path: " + testing::FakeWprBinary() +
                        "\nprofiles:\n  - {name: general, backend: wpr, args: "
                        "[GeneralProfile]}\nexec:\n  enabled: true\n  allow: "
                        "[/bin/sh]\n";
      auto* agent = new testing::AgentProcess(testing::AgentProcess::Options{
          dir_->path() / ("data_" + name),
          cfg,
          {"--log-level", "warn"},
          {"FAKE_WPR_STATE_DIR=" + state.string(),
           "FAKE_WPR_ETL_SOURCE=" + (i == 1 ? big_ : etl_).string()}});
      std::string error;
      if (!agent->Start(&error)) {
        ADD_FAILURE() << error;
        return;
      }
      agents_.push_back(agent);
      inventory += "  - {name: " + name + ", address: \"" + agent->address() +
                   "\"}\n";
    }
    inventory_ = dir_->path() / "inventory.yaml";
    testing::WriteTextFile(inventory_, inventory);
  }

  static void TearDownTestSuite() {
    for (auto* a : agents_) delete a;
    agents_.clear();
    if (!s3_script_.empty() && skip_.empty()) {
      Shell(S3Env() + " bash " + Quote(s3_script_) + " stop --wipe", dir_->path());
    }
    delete dir_;
  }

  void SetUp() override {
    if (!skip_.empty()) GTEST_SKIP() << skip_;
    ASSERT_EQ(agents_.size(), 2u);
  }

  static std::string S3Env() {
    return "env LABTRACE_S3_DIR=" + Quote((dir_->path() / "s3").string()) +
           " LABTRACE_S3_BUCKET=egress-test";
  }

  // `labtrace ARGS` with the gateway's credentials (overridable).
  static Result Labtrace(const std::vector<std::string>& args,
                      std::map<std::string, std::string> env = {}) {
    std::string cmd = "env";
    std::map<std::string, std::string> all = env_;
    all["LABTRACE_EGRESS_PART_SIZE"] = std::to_string(5 << 20);
    for (auto& [k, v] : env) all[k] = v;
    for (const auto& [k, v] : all) cmd += " " + k + "=" + Quote(v);
    cmd += " " + Quote(testing::ControllerBinary());
    for (const auto& a : args) cmd += " " + Quote(a);
    return Shell(cmd, dir_->path());
  }

  // An independent check of the store with boto3: for each object, its
  // size, sha256 of its bytes, x-amz-meta-sha256 and whether it was a
  // multipart upload ("-N" ETag); {} on failure.
  static json Boto3(const std::string& prefix) {
    const auto script = dir_->path() / "check.py";
    testing::WriteTextFile(script, R"py(
import boto3, botocore.config, hashlib, json, os, sys
s3 = boto3.client("s3", endpoint_url=os.environ["AWS_ENDPOINT_URL"],
                  config=botocore.config.Config(s3={"addressing_style": "path"}))
out = {}
for page in s3.get_paginator("list_objects_v2").paginate(
        Bucket=os.environ["LABTRACE_S3_BUCKET"], Prefix=sys.argv[1]):
    for o in page.get("Contents", []):
        got = s3.get_object(Bucket=os.environ["LABTRACE_S3_BUCKET"], Key=o["Key"])
        body = got["Body"].read()
        out[o["Key"]] = {"size": len(body),
                         "sha256": hashlib.sha256(body).hexdigest(),
                         "meta_sha256": got["Metadata"].get("sha256", ""),
                         "multipart": "-" in got["ETag"]}
print(json.dumps(out))
)py");
    std::string cmd = "env";
    for (const auto& [k, v] : env_) cmd += " " + k + "=" + Quote(v);
    cmd += " python3 " + Quote(script.string()) + " " + Quote(prefix);
    Result r = Shell(cmd, dir_->path());
    EXPECT_EQ(r.exit_code, 0) << r.err;
    json j = r.Json();
    return j.is_discarded() ? json::object() : j;
  }

  static testing::TempDir* dir_;
  static std::filesystem::path etl_, big_, inventory_;
  static std::string s3_script_, skip_;
  static std::map<std::string, std::string> env_;
  static std::vector<testing::AgentProcess*> agents_;
};

testing::TempDir* S3EgressTest::dir_ = nullptr;
std::filesystem::path S3EgressTest::etl_, S3EgressTest::big_,
    S3EgressTest::inventory_;
std::string S3EgressTest::s3_script_, S3EgressTest::skip_;
std::map<std::string, std::string> S3EgressTest::env_;
std::vector<testing::AgentProcess*> S3EgressTest::agents_;

constexpr char kPlan[] = R"yaml(
run: egress
defaults: {profile: general, timeout: 30s, stop_timeout: 20s}
tests:
  - name: on_agents
    command: [/bin/sh, -c, "echo traced"]
  - name: fixed
    duration: 1s
)yaml";

TEST_F(S3EgressTest, RunUploadsEveryFileAndFetchFromBringsItBack) {
  const auto plan = dir_->path() / "plan.yaml";
  testing::WriteTextFile(plan, kPlan);
  const auto out = dir_->path() / "runs";
  const std::string url = "s3://" + env_["LABTRACE_S3_BUCKET"] + "/ci";
  Result r = Labtrace({"run", plan.string(), "--inventory", inventory_.string(),
                    "--out", out.string(), "--run-id", "eg1", "--egress", url});
  ASSERT_EQ(r.exit_code, 0) << r.err << r.out;
  EXPECT_THAT(r.out, HasSubstr("file(s) in the object store"));
  json m = json::parse(testing::ReadTextFile(out / "eg1" / "manifest.json"));
  // 2 hosts x (2 traces + 1 step log).
  ASSERT_EQ(m["files"].size(), 6u) << m.dump(1);
  json store = Boto3("ci/eg1/");
  for (const auto& f : m["files"]) {
    EXPECT_EQ(f["status"], "uploaded") << f.dump();
    ASSERT_TRUE(f["object"].is_object()) << f.dump();
    const std::string obj = f["object"]["url"];
    const std::string key = obj.substr(obj.find("/ci/") + 1);
    ASSERT_TRUE(store.contains(key)) << key << " " << store.dump();
    EXPECT_EQ(store[key]["sha256"], f["sha256"]) << key;
    EXPECT_EQ(store[key]["meta_sha256"], f["sha256"]) << key;
    EXPECT_EQ(store[key]["size"], f["size_bytes"]) << key;
    // vm1's trace files are 12 MiB: multipart (5 MiB parts).
    if (f["host"] == "vm1" && f["backend"] == "wpr") {
      EXPECT_TRUE(store[key]["multipart"]) << key;
    }
  }
  EXPECT_TRUE(store.contains("ci/eg1/manifest.json"));
  EXPECT_TRUE(store.contains("ci/eg1/report.html")) << store.dump();
  // Nothing was downloaded by the controller.
  EXPECT_FALSE(std::filesystem::exists(out / "eg1" / "vm0"));

  // Back down from the store alone (no inventory), verified.
  const auto down = dir_->path() / "down";
  Result f = Labtrace({"fetch", "--from", url + "/eg1", "--out", down.string(),
                    "--json"});
  ASSERT_EQ(f.exit_code, 0) << f.err << f.out;
  json got = f.Json();
  ASSERT_EQ(got.size(), 6u) << f.out;
  for (const auto& x : got) {
    EXPECT_EQ(x["status"], "downloaded") << x.dump();
    EXPECT_EQ(*Sha256File(x["file"].get<std::string>()), x["sha256"]);
  }
  // The folder's manifest names each downloaded file where it now is, and
  // the report is rebuilt beside them.
  json dm = json::parse(testing::ReadTextFile(down / "eg1" / "manifest.json"));
  ASSERT_EQ(dm["files"].size(), 6u);
  for (const auto& x : dm["files"]) {
    const std::string rel = x["file"];
    EXPECT_FALSE(rel.empty()) << x.dump();
    EXPECT_TRUE(std::filesystem::is_regular_file(down / "eg1" / rel)) << x.dump();
  }
  const std::string html = testing::ReadTextFile(down / "eg1" / "report.html");
  EXPECT_THAT(html, HasSubstr("eg1"));
  Result again = Labtrace({"fetch", "--from", url + "/eg1", "--out", down.string()});
  EXPECT_EQ(again.exit_code, 0);
  EXPECT_THAT(again.out, HasSubstr("already_present"));
}

TEST_F(S3EgressTest, RefusedCredentialsAndMissingBucketAreClearErrors) {
  const std::string url = "s3://" + env_["LABTRACE_S3_BUCKET"] + "/x";
  Result bad = Labtrace({"fetch", "--inventory", inventory_.string(), "--run",
                      "none", "--egress", url},
                     {{"AWS_SECRET_ACCESS_KEY", "wrong"}});
  EXPECT_EQ(bad.exit_code, 2) << bad.err;
  EXPECT_THAT(bad.err, HasSubstr("SignatureDoesNotMatch"));
  EXPECT_THAT(bad.err, HasSubstr("check the credentials"));
  Result unknown = Labtrace({"fetch", "--inventory", inventory_.string(), "--run",
                          "none", "--egress", url},
                         {{"AWS_ACCESS_KEY_ID", "NOSUCHKEY"}});
  EXPECT_EQ(unknown.exit_code, 2);
  EXPECT_THAT(unknown.err, HasSubstr("InvalidAccessKeyId"));
  Result missing = Labtrace({"fetch", "--inventory", inventory_.string(), "--run",
                          "none", "--egress", "s3://no-such-bucket/x"});
  EXPECT_EQ(missing.exit_code, 2);
  EXPECT_THAT(missing.err, HasSubstr("NoSuchBucket"));
  Result none = Labtrace({"fetch", "--inventory", inventory_.string(), "--run",
                       "none", "--egress", url},
                      {{"AWS_ENDPOINT_URL", "http://127.0.0.1:1"}});
  EXPECT_EQ(none.exit_code, 2);
  EXPECT_THAT(none.err, HasSubstr("cannot reach the object store"));
  Result from = Labtrace({"fetch", "--from", url + "/no-such-run", "--out",
                       (dir_->path() / "x").string()});
  EXPECT_EQ(from.exit_code, 2);
  EXPECT_THAT(from.err, HasSubstr("cannot read the run's manifest"));
}

// The gateway goes away: the upload fails with what happened, and a rerun
// once it is back sends only what is missing.
TEST_F(S3EgressTest, StoppedGatewayThenResume) {
  const std::string url = "s3://" + env_["LABTRACE_S3_BUCKET"] + "/resume";
  for (const char* name : {"first", "second"}) {
    Result s = Labtrace({"start", name, "--profile", "general", "--run-id", "rs",
                      "--inventory", inventory_.string()});
    ASSERT_EQ(s.exit_code, 0) << s.err << s.out;
    Result st = Labtrace({"stop", name, "--inventory", inventory_.string()});
    ASSERT_EQ(st.exit_code, 0) << st.err << st.out;
  }
  // Only "first" goes up now.
  Result one = Labtrace({"fetch", "--run", "rs", "--name", "first", "--egress",
                      url, "--inventory", inventory_.string(), "--json"});
  ASSERT_EQ(one.exit_code, 0) << one.err;
  EXPECT_EQ(one.Json().size(), 2u);

  // The gateway dies (kill -9): no upload is possible, and the error says so.
  const auto pid_file = dir_->path() / "s3" / "run" / "client.rgw.a.pid";
  std::string pid_text = testing::ReadTextFile(pid_file);
  ASSERT_FALSE(pid_text.empty()) << "no " << pid_file;
  const pid_t pid = std::stoi(pid_text);
  ASSERT_EQ(::kill(pid, SIGKILL), 0);
  Result down = Labtrace({"fetch", "--run", "rs", "--egress", url, "--inventory",
                       inventory_.string()});
  EXPECT_EQ(down.exit_code, 2) << down.err;
  EXPECT_THAT(down.err, HasSubstr("cannot reach the object store"));

  // Back up: the rerun skips what is there and sends the rest.
  Result restarted = Shell(S3Env() + " bash " + Quote(s3_script_) + " start",
                        dir_->path());
  ASSERT_EQ(restarted.exit_code, 0) << restarted.err;
  Result all = Labtrace({"fetch", "--run", "rs", "--egress", url, "--inventory",
                      inventory_.string(), "--json"});
  ASSERT_EQ(all.exit_code, 0) << all.err << all.out;
  std::map<std::string, int> by_status;
  for (const auto& f : all.Json()) {
    by_status[f["status"]]++;
    EXPECT_THAT(f["object"]["url"].get<std::string>(), HasSubstr("/resume/rs/"));
  }
  EXPECT_EQ(by_status["already_uploaded"], 2) << all.out;
  EXPECT_EQ(by_status["uploaded"], 2) << all.out;
  json store = Boto3("resume/rs/");
  int traces = 0;
  for (const auto& [key, o] : store.items()) {
    if (key.ends_with("manifest.json")) continue;
    EXPECT_EQ(o["sha256"], o["meta_sha256"]) << key;
    ++traces;
  }
  EXPECT_EQ(traces, 4);
  // The manifest in the store knows all four.
  ASSERT_TRUE(store.contains("resume/rs/manifest.json"));
}

// The REST mirror's upload: the same operation with a JSON body; the object
// arrives whole, and a request that covers the file wrongly is refused.
TEST_F(S3EgressTest, RestUploadToAPresignedUrl) {
  if (agents_[0]->rest_port() == 0) GTEST_SKIP() << "REST is off";
  Result s = Labtrace({"start", "rest_up", "--profile", "general", "--run-id",
                       "restrun", "--hosts", "vm0", "--inventory",
                       inventory_.string()});
  ASSERT_EQ(s.exit_code, 0) << s.err;
  Result st = Labtrace({"stop", "rest_up", "--hosts", "vm0", "--inventory",
                        inventory_.string(), "--json"});
  ASSERT_EQ(st.exit_code, 0) << st.err;
  json stopped = st.Json();
  const json artifact = stopped[0]["results"].is_array()
                            ? stopped[0]["results"][0]["artifact"]
                            : stopped[0]["artifact"];
  ASSERT_TRUE(artifact.is_object()) << st.out;
  const std::string id = artifact["id"];
  const std::string sha = artifact["sha256"];
  const std::uint64_t size = artifact["size_bytes"].get<std::uint64_t>();

  controller::S3Config cfg;
  cfg.endpoint = env_["AWS_ENDPOINT_URL"];
  cfg.region = env_["AWS_REGION"];
  cfg.access_key = env_["AWS_ACCESS_KEY_ID"];
  cfg.secret_key = env_["AWS_SECRET_ACCESS_KEY"];
  controller::S3Client s3(cfg);
  const std::string key = "rest/" + id + ".etl";
  const std::string url =
      s3.PresignPut(env_["LABTRACE_S3_BUCKET"], key, sha, absl::Minutes(10));
  const std::string rest = "http://127.0.0.1:" +
                           std::to_string(agents_[0]->rest_port()) +
                           "/v1/artifacts/" + id + "/upload";
  json body = {{"parts", {{{"url", url}, {"offset", "0"},
                           {"length", std::to_string(size)}}}},
               {"headers", {{"x-amz-meta-sha256", sha}}}};
  const auto body_file = dir_->path() / "upload.json";
  testing::WriteTextFile(body_file, body.dump());
  Result up = Shell("curl -sS -d @" + Quote(body_file.string()) + " " + Quote(rest),
                    dir_->path());
  ASSERT_EQ(up.exit_code, 0) << up.err;
  json answer = up.Json();
  ASSERT_TRUE(answer.contains("parts")) << up.out;
  json store = Boto3("rest/");
  ASSERT_TRUE(store.contains(key)) << store.dump();
  EXPECT_EQ(store[key]["sha256"], sha);
  EXPECT_EQ(store[key]["meta_sha256"], sha);

  // Parts that do not cover the file: 400 with the reason, nothing sent.
  body["parts"][0]["length"] = std::to_string(size - 1);
  testing::WriteTextFile(body_file, body.dump());
  Result bad = Shell("curl -sS -w '\\n%{http_code}' -d @" +
                         Quote(body_file.string()) + " " + Quote(rest),
                     dir_->path());
  EXPECT_THAT(bad.out, HasSubstr("the parts cover"));
  EXPECT_THAT(bad.out, HasSubstr("400"));
}

}  // namespace
}  // namespace labtrace
