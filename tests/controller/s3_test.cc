#include "controller/egress/s3.h"

#include <cstdlib>

#include "common/http_client.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/testing/test_util.h"

namespace labtrace::controller {
namespace {

using ::testing::HasSubstr;

// AWS's published example of a presigned GET ("Authenticating Requests:
// Using Query Parameters (AWS Signature Version 4)", Amazon S3 API
// reference): the signature must come out exactly.
TEST(PresignTest, MatchesAwsPublishedExample) {
  absl::Time now;
  std::string err;
  ASSERT_TRUE(absl::ParseTime(absl::RFC3339_full, "2013-05-24T00:00:00Z", &now,
                              &err));
  const std::string url = PresignV4(
      "GET", "https", "examplebucket.s3.amazonaws.com", "/test.txt", {}, {},
      "us-east-1", "AKIAIOSFODNN7EXAMPLE",
      "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY", "", now, absl::Hours(24));
  EXPECT_EQ(url,
            "https://examplebucket.s3.amazonaws.com/test.txt"
            "?X-Amz-Algorithm=AWS4-HMAC-SHA256"
            "&X-Amz-Credential=AKIAIOSFODNN7EXAMPLE%2F20130524%2Fus-east-1%2Fs3%"
            "2Faws4_request&X-Amz-Date=20130524T000000Z&X-Amz-Expires=86400"
            "&X-Amz-SignedHeaders=host&X-Amz-Signature="
            "aeeed9bbccd4d02ee5c0109b86d86835f995330da4c265957d157751f604d404");
}

TEST(PresignTest, SignedHeadersAndPartParametersAreSigned) {
  const absl::Time now = absl::FromUnixSeconds(1700000000);
  const std::string a = PresignV4("PUT", "http", "127.0.0.1:7480", "/b/k", {},
                                  {{"x-amz-meta-sha256", "abc"}}, "us-east-1",
                                  "AK", "SK", "", now, absl::Hours(1));
  EXPECT_THAT(a, HasSubstr("X-Amz-SignedHeaders=host%3Bx-amz-meta-sha256"));
  const std::string b = PresignV4("PUT", "http", "127.0.0.1:7480", "/b/k", {},
                                  {{"x-amz-meta-sha256", "abd"}}, "us-east-1",
                                  "AK", "SK", "", now, absl::Hours(1));
  EXPECT_NE(a, b);  // The header's value is part of the signature.
  const std::string part = PresignV4(
      "PUT", "http", "h:1", "/b/k", {{"partNumber", "2"}, {"uploadId", "u/+="}},
      {}, "us-east-1", "AK", "SK", "TOKEN", now, absl::Hours(1));
  EXPECT_THAT(part, HasSubstr("partNumber=2"));
  EXPECT_THAT(part, HasSubstr("uploadId=u%2F%2B%3D"));
  EXPECT_THAT(part, HasSubstr("X-Amz-Security-Token=TOKEN"));
}

TEST(S3LocationTest, ParsesAndRefusesPrecisely) {
  auto loc = S3Location::Parse("s3://lab-traces/nightly/ci/");
  ASSERT_TRUE(loc.ok()) << loc.status();
  EXPECT_EQ(loc->bucket, "lab-traces");
  EXPECT_EQ(loc->prefix, "nightly/ci");
  EXPECT_EQ(loc->Key("r1/vm1/a.etl"), "nightly/ci/r1/vm1/a.etl");
  EXPECT_EQ(loc->Url("x/y"), "s3://lab-traces/x/y");
  auto bare = S3Location::Parse("s3://bucket");
  ASSERT_TRUE(bare.ok());
  EXPECT_EQ(bare->Key("a"), "a");
  EXPECT_FALSE(S3Location::Parse("https://bucket/x").ok());
  EXPECT_FALSE(S3Location::Parse("s3://Bad_Bucket/x").ok());
  EXPECT_FALSE(S3Location::Parse("s3://ab").ok());
  EXPECT_FALSE(S3Location::Parse("s3://bucket/a/../b").ok());
  EXPECT_EQ(http::UriEncode("a b/c~d", true), "a%20b/c~d");
  EXPECT_EQ(http::UriEncode("a b/c", false), "a%20b%2Fc");
}

// Credentials: the environment first, then the profile in the shared
// credentials file; region and endpoint from their variables.
TEST(S3ConfigTest, CredentialsFromTheEnvironmentOrTheProfile) {
  testing::TempDir dir;
  const auto creds = dir.path() / "credentials";
  testing::WriteTextFile(creds,
                         "[default]\naws_access_key_id = DK\n"
                         "aws_secret_access_key = DS\n\n[lab]\n"
                         "aws_access_key_id=LK\naws_secret_access_key=LS\n"
                         "aws_session_token = LT\n");
  setenv("AWS_SHARED_CREDENTIALS_FILE", creds.c_str(), 1);
  setenv("AWS_CONFIG_FILE", (dir.path() / "none").c_str(), 1);
  setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:7480/", 1);
  unsetenv("AWS_ENDPOINT_URL_S3");
  setenv("AWS_REGION", "eu-west-1", 1);
  setenv("AWS_ACCESS_KEY_ID", "EK", 1);
  setenv("AWS_SECRET_ACCESS_KEY", "ES", 1);
  unsetenv("AWS_PROFILE");
  auto env = ResolveS3Config({});
  ASSERT_TRUE(env.ok()) << env.status();
  EXPECT_EQ(env->access_key, "EK");
  EXPECT_EQ(env->endpoint, "http://127.0.0.1:7480");
  EXPECT_EQ(env->region, "eu-west-1");
  // An explicit profile wins over the environment's keys.
  auto lab = ResolveS3Config({"", "", "", "lab"});
  ASSERT_TRUE(lab.ok()) << lab.status();
  EXPECT_EQ(lab->access_key, "LK");
  EXPECT_EQ(lab->session_token, "LT");
  unsetenv("AWS_ACCESS_KEY_ID");
  unsetenv("AWS_SECRET_ACCESS_KEY");
  auto def = ResolveS3Config({});
  ASSERT_TRUE(def.ok());
  EXPECT_EQ(def->access_key, "DK");
  auto missing = ResolveS3Config({"", "", "", "nope"});
  EXPECT_EQ(missing.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(missing.status().message(), HasSubstr("[nope]"));
  setenv("AWS_ENDPOINT_URL", "ftp://x", 1);
  EXPECT_FALSE(ResolveS3Config({}).ok());
  for (const char* v : {"AWS_SHARED_CREDENTIALS_FILE", "AWS_CONFIG_FILE",
                        "AWS_ENDPOINT_URL", "AWS_REGION"})
    unsetenv(v);
}

TEST(S3ErrorTest, NamesTheStoreCodeAndWhatToDo) {
  const std::string body =
      "<?xml version=\"1.0\"?><Error><Code>NoSuchBucket</Code>"
      "<Message>gone</Message></Error>";
  absl::Status s = S3Error(404, body, "bucket x");
  EXPECT_EQ(s.code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(s.message(), HasSubstr("NoSuchBucket"));
  EXPECT_THAT(s.message(), HasSubstr("create the bucket"));
  absl::Status d = S3Error(
      403, "<Error><Code>SignatureDoesNotMatch</Code></Error>", "PUT");
  EXPECT_EQ(d.code(), absl::StatusCode::kPermissionDenied);
  EXPECT_THAT(d.message(), HasSubstr("check the credentials"));
  EXPECT_EQ(S3Error(503, "", "x").code(), absl::StatusCode::kUnavailable);
}

}  // namespace
}  // namespace labtrace::controller
