#include "controller/inventory/inventory.h"

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/testing/test_util.h"

namespace labtrace::controller {
namespace {

using ::testing::HasSubstr;

constexpr char kInventory[] = R"(
defaults:
  port: 7500
  connect_timeout: 2s
hosts:
  - name: vm1
    address: 10.0.0.1
    labels: {role: driver, os: windows}
  - name: vm2
    address: vm2.lab:7411
    labels: {role: worker, os: windows}
  - name: vm3
    address: "[::1]:9000"
    labels: {role: worker, os: linux}
)";

TEST(InventoryTest, ParsesHostsAndDefaults) {
  auto inv = ParseInventory(kInventory, "inv.yaml");
  ASSERT_TRUE(inv.ok()) << inv.status();
  ASSERT_EQ(inv->hosts.size(), 3u);
  EXPECT_EQ(inv->hosts[0].address, "10.0.0.1:7500");
  EXPECT_EQ(inv->hosts[1].address, "vm2.lab:7411");
  EXPECT_EQ(inv->hosts[2].address, "[::1]:9000");
  EXPECT_EQ(inv->connect_timeout, absl::Seconds(2));
  EXPECT_EQ(inv->hosts[0].labels.at("role"), "driver");
}

TEST(InventoryTest, SelectsByNameOrLabels) {
  auto inv = *ParseInventory(kInventory, "inv.yaml");
  EXPECT_EQ(SelectHosts(inv, "")->size(), 3u);
  auto two = SelectHosts(inv, "vm3,vm1");
  ASSERT_TRUE(two.ok());
  ASSERT_EQ(two->size(), 2u);
  EXPECT_EQ((*two)[0].name, "vm1");  // Inventory order.
  auto workers = SelectHosts(inv, "role=worker");
  ASSERT_EQ(workers->size(), 2u);
  auto win_workers = SelectHosts(inv, "role=worker,os=windows");
  ASSERT_EQ(win_workers->size(), 1u);
  EXPECT_EQ((*win_workers)[0].name, "vm2");

  auto unknown = SelectHosts(inv, "vm1,vm9");
  EXPECT_EQ(unknown.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(unknown.status().message()), HasSubstr("vm9"));
  EXPECT_FALSE(SelectHosts(inv, "role=nobody").ok());
  EXPECT_FALSE(SelectHosts(inv, "vm1,role=worker").ok());
}

TEST(InventoryTest, ErrorsNameFileAndLine) {
  struct Case {
    const char* yaml;
    const char* expect;
  } cases[] = {
      {"hosts:\n  - {name: a, address: x}\n  - {name: a, address: y}\n",
       "inv.yaml:3"},
      {"hosts:\n  - {name: a, address: \"bad host\"}\n", "bad address"},
      {"hosts:\n  - {name: a, address: \"h:99999\"}\n", "port must be"},
      {"hosts:\n  - {name: a}\n", "needs `name` and `address`"},
      {"hosts:\n  - {name: ../a, address: h}\n", "host name"},
      {"hostz: []\n", "unknown key"},
      {"hosts: [\n", "inv.yaml:"},
      {"hosts: []\n", "non-empty"},
      {"defaults: {port: x}\nhosts: [{name: a, address: h}]\n", "port must be"},
  };
  for (const Case& c : cases) {
    auto inv = ParseInventory(c.yaml, "inv.yaml");
    ASSERT_FALSE(inv.ok()) << c.yaml;
    EXPECT_THAT(std::string(inv.status().message()), HasSubstr(c.expect))
        << c.yaml;
  }
  EXPECT_FALSE(LoadInventory("/nonexistent/inv.yaml").ok());
}

TEST(InventoryTest, ExampleInventoryInDeployParses) {
  auto inv = LoadInventory(
      testing::SourcePath("deploy/inventory.example.yaml").string());
  ASSERT_TRUE(inv.ok()) << inv.status();
  EXPECT_GE(inv->hosts.size(), 2u);
}

TEST(InventoryTest, EgressBlock) {
  auto inv = ParseInventory(
      "egress:\n  url: s3://lab/x\n  endpoint: http://rgw:7480\n"
      "  region: eu-west-1\n  profile: lab\nhosts:\n"
      "  - {name: a, address: 10.0.0.1}\n",
      "inv.yaml");
  ASSERT_TRUE(inv.ok()) << inv.status();
  EXPECT_EQ(inv->egress.url, "s3://lab/x");
  EXPECT_EQ(inv->egress.endpoint, "http://rgw:7480");
  EXPECT_EQ(inv->egress.region, "eu-west-1");
  EXPECT_EQ(inv->egress.profile, "lab");
  auto bad = ParseInventory(
      "egress:\n  bucket: x\nhosts:\n  - {name: a, address: 10.0.0.1}\n",
      "inv.yaml");
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.status().message().find("inv.yaml:2"), std::string::npos)
      << bad.status();
}

}  // namespace
}  // namespace labtrace::controller
