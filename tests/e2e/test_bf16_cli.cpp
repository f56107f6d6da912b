// --dtype bf16 from the command line (generate and bench) and `kakusan compare`, on the kit's tiny model: the
// PNG says its dtype, the image stays as close to the fp32 golden as diffusers' own bf16 pipeline does
// (tests/golden/bf16), the notice appears exactly on CPUs without AVX512_BF16, bench's JSON says bf16.
#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "cli_test.h"
#include "core/cpu_features.h"
#include "io/png.h"
#include "support/golden.h"

namespace kakusan {
namespace {

namespace fs = std::filesystem;
using testing::CliRun;

const char* const kNotice = "this CPU has no fast bf16 products";

class Bf16Cli : public testing::CliTest {
 protected:
  CliRun run(const std::vector<std::string>& argv) { return run_cli(argv); }
};

// diffusers-bf16's largest image error on case b (tests/golden/bf16/diffusers_bf16.json), in 8-bit levels,
// plus one level for the rounding of both images to 8 bits.
int bf16_levels_of_case_b() {
  std::ifstream in(fs::path(KAKUSAN_SOURCE_DIR) / "tests/golden/bf16/diffusers_bf16.json");
  const double max = nlohmann::json::parse(in).at("cases").at("pipe_b_dpm20").at("image_max").get<double>();
  return int(std::ceil(max * 255)) + 1;
}

TEST_F(Bf16Cli, GeneratesCaseBInBf16) {
  KK_REQUIRE_GOLDEN();
  const CliRun r = run({"generate", "--model", (*testing::golden_dir() / "tiny-sd").string(), "--prompt",
                        "portrait photo of a old warrior chief", "--seed", "0", "--steps", "20", "--scheduler",
                        "DPMSolverMultistepScheduler", "--dtype", "bf16", "--quiet", "--output",
                        out("b.png").string()});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.err.find(kNotice) != std::string::npos, !cpu_has_fast_bf16_products()) << r.err;
  const PngContents png = read_png(out("b.png"));
  ASSERT_EQ(png.text.size(), 1u);
  EXPECT_NE(png.text[0].second.find(", Dtype: bf16"), std::string::npos) << png.text[0].second;

  const fs::path golden = *testing::golden_dir() / "pipeline" / "b_dpm20_0.png";
  const CliRun c = run({"compare", out("b.png").string(), golden.string()});
  ASSERT_EQ(c.exit_code, 0) << c.err;
  const size_t at = c.out.find("max difference ");
  ASSERT_NE(at, std::string::npos) << c.out;
  EXPECT_LE(std::stoi(c.out.substr(at + 15)), bf16_levels_of_case_b()) << c.out;
  EXPECT_EQ(c.out.find("PSNR inf"), std::string::npos) << "bf16 products should move some pixel: " << c.out;
}

TEST_F(Bf16Cli, CompareSaysInfinityForTheSameImageAndRefusesOtherSizes) {
  KK_REQUIRE_GOLDEN();
  const fs::path a = *testing::golden_dir() / "pipeline" / "b_dpm20_0.png";
  const CliRun same = run({"compare", a.string(), a.string()});
  ASSERT_EQ(same.exit_code, 0) << same.err;
  EXPECT_EQ(same.out.rfind("PSNR inf dB, max difference 0, mean difference 0.0000", 0), 0u) << same.out;

  Image small{2, 1, {0, 0, 0, 255, 255, 255}};
  write_png(out("small.png"), small);
  const CliRun other = run({"compare", a.string(), out("small.png").string()});
  EXPECT_EQ(other.exit_code, 2);
  EXPECT_EQ(other.out, "");
  EXPECT_NE(other.err.find("differ in size"), std::string::npos) << other.err;
}

TEST_F(Bf16Cli, BenchRunsAndReportsBf16) {
  KK_REQUIRE_GOLDEN();
  const CliRun r = run({"bench", "--model", (*testing::golden_dir() / "tiny-sd").string(), "--dtype", "bf16",
                        "--threads", "1"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  std::string last = r.out;
  while (!last.empty() && last.back() == '\n') last.pop_back();
  const nlohmann::json json = nlohmann::json::parse(last.substr(last.rfind('\n') + 1));
  EXPECT_EQ(json.at("dtype"), "bf16");
  EXPECT_GT(json.at("unet_step_s").get<double>(), 0.0);
}

}  // namespace
}  // namespace kakusan
