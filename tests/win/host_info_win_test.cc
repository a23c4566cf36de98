// Tests of common/host_info_win.cc under wine.

#include <string>

#include "common/host_info.h"
#include "gtest/gtest.h"

namespace labtrace {
namespace {

TEST(HostInfoWinTest, DescribesTheMachine) {
  EXPECT_FALSE(HostName().empty());
  EXPECT_NE(HostName(), "unknown");
  const std::string os = OsDescription();
  EXPECT_EQ(os.rfind("Windows ", 0), 0u) << os;
  EXPECT_GT(ResidentBytes(), 0u);
  EXPECT_GT(CurrentPid(), 0);
}

}  // namespace
}  // namespace labtrace
