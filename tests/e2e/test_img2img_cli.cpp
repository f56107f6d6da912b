// `kakusan generate --image [--mask-image] [--strength]` end to end on the kit's tiny model: the PNGs equal
// the C++ API's images (and diffusers' within one level), record A1111's "Denoising strength", and bad image
// requests exit 2 with one line and write nothing.
#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "cli_test.h"
#include "io/png.h"
#include "io/safetensors.h"
#include "kakusan/pipeline.h"
#include "support/golden.h"

namespace kakusan {
namespace {

namespace fs = std::filesystem;
using testing::CliRun;

const fs::path kGoldens = fs::path(KAKUSAN_SOURCE_DIR) / "tests" / "golden" / "img2img";

class ImageCli : public testing::CliTest {
 protected:
  CliRun run(std::vector<std::string> args) {
    const std::vector<std::string> common = {"generate", "--model", model(), "--prompt", kPrompt, "--steps", "10",
                                             "--seed", "0", "--quiet", "--output", (dir_ / "out" / "x.png").string()};
    args.insert(args.begin(), common.begin(), common.end());
    return run_cli(args);
  }

  static std::string model() { return (*testing::golden_dir() / "tiny-sd").string(); }
  static std::string input(const char* name) { return (kGoldens / name).string(); }

  static constexpr const char* kPrompt = "portrait photo of a old warrior chief";
};

GenerateResult api_result(const std::string& scheduler, double strength, bool mask) {
  LoadOptions load;
  load.scheduler = scheduler;
  StableDiffusionPipeline pipe = StableDiffusionPipeline::load((*testing::golden_dir() / "tiny-sd").string(), load);
  GenerateParams params;
  params.prompt = {"portrait photo of a old warrior chief"};
  params.num_inference_steps = 10;
  params.seeds = {0};
  params.strength = strength;
  params.image = {read_image(kGoldens / "input_64x64.png")};
  if (mask) params.mask_image = {read_image(kGoldens / "mask_64x64.png")};
  return pipe.generate(params);
}

// The CLI's PNG equals the API's image, is within one level of diffusers' float image, and says how it was made.
void expect_same_as_api(const fs::path& png, const GenerateResult& api, const std::string& golden,
                        const std::string& strength_text) {
  const PngContents written = read_png(png);
  ASSERT_EQ(api.images.size(), 1u);
  EXPECT_EQ(written.image.rgb, api.images[0].rgb);
  const SafetensorsFile want = SafetensorsFile::open(kGoldens / (golden + ".safetensors"));
  const TensorView image = want.view("image");
  int worst = 0;
  for (size_t i = 0; i < written.image.rgb.size(); ++i)
    worst = std::max(worst, std::abs(int(written.image.rgb[i]) - int(std::lround(image.f32()[i] * 255.0f))));
  EXPECT_LE(worst, 1);
  ASSERT_EQ(written.text.size(), 1u);
  EXPECT_NE(written.text[0].second.find("Denoising strength: " + strength_text), std::string::npos)
      << written.text[0].second;
}

TEST_F(ImageCli, ImageToImageEqualsTheApi) {
  KK_REQUIRE_GOLDEN();
  const CliRun r = run({"--scheduler", "DPMSolverMultistepScheduler", "--image", input("input_64x64.png"),
                        "--strength", "0.75"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  expect_same_as_api(dir_ / "out" / "x.png", api_result("DPMSolverMultistepScheduler", 0.75, false), "i2i_dpm_s075",
                     "0.75");
}

TEST_F(ImageCli, InpaintingEqualsTheApiWithItsDefaultStrength) {
  KK_REQUIRE_GOLDEN();
  const CliRun r = run({"--image", input("input_64x64.png"), "--mask-image", input("mask_64x64.png")});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  expect_same_as_api(dir_ / "out" / "x.png", api_result("PNDMScheduler", 1.0, true), "inpaint4_pndm_s100", "1.0");
}

TEST_F(ImageCli, BadImageRequestsExit2AndWriteNothing) {
  KK_REQUIRE_GOLDEN();
  const fs::path corrupt = dir_ / "corrupt.png";
  std::ofstream(corrupt) << "\x89PNG\r\n\x1a\n not really";
  const fs::path huge = dir_ / "huge.png";
  write_png(huge, Image{9000, 8, std::vector<uint8_t>(9000 * 8 * 3, 128)});
  const fs::path small_mask = dir_ / "small_mask.png";
  write_png(small_mask, Image{32, 32, std::vector<uint8_t>(32 * 32 * 3, 255)});
  const std::string image = input("input_64x64.png");
  const std::vector<std::pair<std::vector<std::string>, std::string>> cases = {
      {{"--image", (dir_ / "missing.png").string()}, "missing.png"},
      {{"--image", corrupt.string()}, "corrupt.png"},
      {{"--image", huge.string()}, "huge.png"},
      {{"--image", image, "--strength", "1.5"}, "strength should in [0.0, 1.0]"},
      {{"--image", image, "--strength", "-0.1"}, "strength should in [0.0, 1.0]"},
      {{"--image", image, "--strength", "0.05"}, "number of pipeline steps is 0"},
      {{"--image", image, "--mask-image", small_mask.string()}, "the mask is 32x32 but the image is 64x64"},
      {{"--mask-image", image}, "`mask_image` is given without `image`"},
      {{"--strength", "0.5"}, "`strength` is given without `image`"},
  };
  for (const auto& [args, message] : cases) {
    const CliRun r = run(args);
    EXPECT_EQ(r.exit_code, 2) << args[1] << "\n" << r.err;
    EXPECT_NE(r.err.find(message), std::string::npos) << r.err;
    EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << r.err;
    EXPECT_TRUE(nothing_written()) << args[1];
  }
}

}  // namespace
}  // namespace kakusan
