// `--offload none|model|sequential` of generate, bench and serve: a bad value is one line and exit 2 with nothing
// written, before any model is read; on the CPU, model and sequential give the image of none, byte for byte.
#include <gtest/gtest.h>

#include <algorithm>
#include <fstream>
#include <iterator>

#include "cli_test.h"
#include "support/golden.h"

namespace kakusan {
namespace {

class OffloadCli : public testing::CliTest {
 protected:
  static std::string model() { return (*testing::golden_dir() / "tiny-sd").string(); }
  std::string read(const char* name) const {
    std::ifstream in(out(name), std::ios::binary);
    return {std::istreambuf_iterator<char>(in), {}};
  }
};

TEST_F(OffloadCli, ABadValueIsOneLineAndExit2) {
  const std::vector<std::vector<std::string>> commands = {
      {"generate", "--model", "no-such-model", "--prompt", "a", "--output", out("a.png").string()},
      {"bench", "--model", "no-such-model"},
      {"serve", "--model", "no-such-model", "--port", "0"},
  };
  for (std::vector<std::string> argv : commands) {
    SCOPED_TRACE(argv[0]);
    argv.insert(argv.end(), {"--offload", "foo"});
    const testing::CliRun r = run_cli(argv);
    EXPECT_EQ(r.exit_code, 2) << r.err;
    EXPECT_NE(r.err.find("offload \"foo\" is not none, model or sequential"), std::string::npos) << r.err;
    EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << r.err;
    EXPECT_TRUE(nothing_written());
  }
}

TEST_F(OffloadCli, OnTheCpuEveryModeGivesTheSameImage) {
  KK_REQUIRE_GOLDEN();
  for (const char* mode : {"none", "model", "sequential"}) {
    const testing::CliRun r = run_cli({"generate", "--model", model(), "--prompt", "a red apple", "--steps", "2",
                                       "--seed", "0", "--quiet", "--offload", mode, "--output",
                                       out((std::string(mode) + ".png").c_str()).string()});
    ASSERT_EQ(r.exit_code, 0) << mode << ": " << r.err;
  }
  const std::string none = read("none.png");
  ASSERT_FALSE(none.empty());
  EXPECT_EQ(read("model.png"), none);
  EXPECT_EQ(read("sequential.png"), none);
}

// bench runs each mode (on the CPU the weights stay host memory) and says which in its JSON.
TEST_F(OffloadCli, BenchReportsTheOffloadInItsJson) {
  KK_REQUIRE_GOLDEN();
  for (const char* mode : {"model", "sequential"}) {
    const testing::CliRun r = run_cli({"bench", "--model", model(), "--threads", "2", "--offload", mode});
    ASSERT_EQ(r.exit_code, 0) << mode << ": " << r.err;
    EXPECT_NE(r.out.find(std::string("\"offload\":\"") + mode + "\""), std::string::npos) << r.out;
  }
}

}  // namespace
}  // namespace kakusan
