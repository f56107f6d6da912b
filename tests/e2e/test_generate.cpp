// `kakusan generate` end to end on the kit's tiny model: the tutorial's batch (case d) as PNGs and a grid
// matching diffusers' pixels, tensors saved for case b, and bad requests that exit 2 and write nothing.
#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <string>
#include <vector>

#include "cli_test.h"
#include "io/png.h"
#include "io/safetensors.h"
#include "support/golden.h"
#include "support/golden_manifest.h"

namespace kakusan {
namespace {

namespace fs = std::filesystem;
using testing::CliRun;

// `kakusan generate ...` in a fresh, empty folder per test.
class GenerateCli : public testing::CliTest {
 protected:
  CliRun run(const std::vector<std::string>& args) {
    std::vector<std::string> argv = {"generate"};
    argv.insert(argv.end(), args.begin(), args.end());
    return run_cli(argv);
  }

  std::vector<std::string> files_written() const {
    std::vector<std::string> names;
    for (const auto& entry : fs::directory_iterator(dir_ / "out")) names.push_back(entry.path().filename().string());
    return names;
  }

  static std::string model(const char* name = "tiny-sd") { return (*testing::golden_dir() / name).string(); }

};

int max_pixel_difference(const Image& got, const Image& want, int x0 = 0, int y0 = 0) {
  int worst = 0;
  for (int y = 0; y < want.height; ++y)
    for (int x = 0; x < want.width * 3; ++x) {
      const int a = got.rgb[size_t((y0 + y) * got.width * 3 + x0 * 3 + x)];
      const int b = want.rgb[size_t(y * want.width * 3 + x)];
      worst = std::max(worst, std::abs(a - b));
    }
  return worst;
}

const char* const kTutorialPrompts[] = {
    "portrait photo of the oldest warrior chief, tribal panther make up, blue on red, side profile, looking away, "
    "serious eyes 50mm portrait photography, hard rim lighting photography--beta --ar 2:3  --beta --upbeta",
    "portrait photo of a old warrior chief, tribal panther make up, blue on red, side profile, looking away, serious "
    "eyes 50mm portrait photography, hard rim lighting photography--beta --ar 2:3  --beta --upbeta",
    "portrait photo of a warrior chief, tribal panther make up, blue on red, side profile, looking away, serious eyes "
    "50mm portrait photography, hard rim lighting photography--beta --ar 2:3  --beta --upbeta",
    "portrait photo of a young warrior chief, tribal panther make up, blue on red, side profile, looking away, "
    "serious eyes 50mm portrait photography, hard rim lighting photography--beta --ar 2:3  --beta --upbeta",
};

// Case d: four prompts, four generators seeded 1, DPM++ 25 steps -> four PNGs and a 2x2 grid.
TEST_F(GenerateCli, TutorialBatchMatchesDiffusersPngsAndGrid) {
  KK_REQUIRE_GOLDEN();
  std::vector<std::string> args = {"--model", model(), "--scheduler", "DPMSolverMultistepScheduler", "--steps", "25",
                                   "--height", "64", "--width", "64", "--output", out("warrior.png").string(),
                                   "--grid", "2x2", "--quiet"};
  for (const char* prompt : kTutorialPrompts) args.insert(args.end(), {"--prompt", prompt, "--seed", "1"});
  const CliRun r = run(args);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.err, "");  // --quiet: no progress bar
  const Image grid = read_png(out("warrior-grid.png")).image;
  ASSERT_EQ(grid.width, 128);
  ASSERT_EQ(grid.height, 128);
  for (int i = 0; i < 4; ++i) {
    const fs::path path = out(i == 0 ? "warrior.png" : ("warrior-" + std::to_string(i) + ".png").c_str());
    const PngContents png = read_png(path);
    const Image want =
        read_png(*testing::golden_dir() / "pipeline" / ("d_tutorial_batch4_seed1_" + std::to_string(i) + ".png"))
            .image;
    EXPECT_LE(max_pixel_difference(png.image, want), 1) << path;
    EXPECT_LE(max_pixel_difference(grid, want, (i % 2) * 64, (i / 2) * 64), 1) << "grid cell " << i;
    ASSERT_EQ(png.text.size(), 1u);
    EXPECT_EQ(png.text[0].first, "parameters");
    const std::string& parameters = png.text[0].second;
    EXPECT_EQ(parameters.rfind(kTutorialPrompts[i], 0), 0u) << parameters;
    EXPECT_NE(parameters.find("Steps: 25, Sampler: DPMSolverMultistepScheduler, CFG scale: 7.5, Seed: 1, Size: 64x64, "
                              "Model: tiny-sd"),
              std::string::npos)
        << parameters;
  }
  EXPECT_EQ(files_written().size(), 5u);
}

// Case b through --save-tensors: float32 latents [B,4,h,w] and images [B,H,W,3] as diffusers returns them.
TEST_F(GenerateCli, SavesLatentsAndImagesOfCaseB) {
  KK_REQUIRE_GOLDEN();
  const CliRun r = run({"--model", model(), "--prompt", "portrait photo of a old warrior chief", "--seed", "0",
                        "--steps", "20", "--scheduler", "DPMSolverMultistepScheduler", "--output",
                        out("b.png").string(), "--save-tensors", out("b.safetensors").string()});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.err.find("denoising"), std::string::npos) << r.err;  // the progress bar (plain lines: not a TTY)
  const SafetensorsFile saved = SafetensorsFile::open(out("b.safetensors"));
  const SafetensorsFile want = testing::open_golden("pipeline/b_dpm20.safetensors");
  KK_EXPECT_CLOSE(saved.view("latents"), want.view("latents"), testing::golden_tolerance("pipe_b_dpm20", "latents"),
                  "latents");
  KK_EXPECT_CLOSE(saved.view("images"), want.view("image"), testing::golden_tolerance("pipe_b_dpm20", "image"),
                  "images");
}

// Case i: the tutorial's VAE swap (--vae), with attention slicing on (case h: bit-identical in diffusers).
TEST_F(GenerateCli, SwapsTheVae) {
  KK_REQUIRE_GOLDEN();
  const CliRun r = run({"--model", model(), "--vae", model("tiny-vae-alt"), "--prompt",
                        "portrait photo of a old warrior chief", "--seed", "0", "--steps", "20", "--scheduler",
                        "DPMSolverMultistepScheduler", "--attention-slicing", "auto", "--output", out("i.png").string(),
                        "--quiet"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const Image want = read_png(*testing::golden_dir() / "pipeline" / "i_vae_alt_0.png").image;
  EXPECT_LE(max_pixel_difference(read_png(out("i.png")).image, want), 1);
}

// The fast recipe from the CLI: LCMScheduler, 4 steps, guidance 1, and a TAESD as --vae (the tiny one of
// tests/golden/taesd): the saved tensors match diffusers' run of the same (pipe_taesd).
TEST_F(GenerateCli, LcmWithATinyAutoencoder) {
  KK_REQUIRE_GOLDEN();
  const std::string taesd = std::string(KAKUSAN_SOURCE_DIR) + "/tests/golden/taesd/tiny-taesd";
  const CliRun r = run({"--model", model(), "--vae", taesd, "--prompt", "portrait photo of a old warrior chief",
                        "--seed", "0", "--steps", "4", "--guidance", "1", "--scheduler", "LCMScheduler", "--output",
                        out("lcm.png").string(), "--save-tensors", out("lcm.safetensors").string(), "--quiet"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const SafetensorsFile saved = SafetensorsFile::open(out("lcm.safetensors"));
  const SafetensorsFile want =
      SafetensorsFile::open(std::string(KAKUSAN_SOURCE_DIR) + "/tests/golden/taesd/pipe_taesd.safetensors");
  KK_EXPECT_CLOSE(saved.view("latents"), want.view("latents"), {1e-3, 1e-3}, "latents");
  KK_EXPECT_CLOSE(saved.view("images"), want.view("image"), {2e-3, 0}, "images");
  EXPECT_TRUE(fs::exists(out("lcm.png")));
}

TEST_F(GenerateCli, RandomSeedIsPrintedAndStored) {
  KK_REQUIRE_GOLDEN();
  const CliRun r = run({"--model", model(), "--prompt", "a cat", "--steps", "2", "--output", out("cat.png").string(),
                        "--quiet"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const size_t at = r.out.find("seed: ");
  ASSERT_NE(at, std::string::npos) << r.out;
  const std::string seed = r.out.substr(at + 6, r.out.find('\n', at) - at - 6);
  const PngContents png = read_png(out("cat.png"));
  ASSERT_EQ(png.text.size(), 1u);
  EXPECT_NE(png.text[0].second.find("Seed: " + seed + ","), std::string::npos) << png.text[0].second;
}

// Bad requests: exit code 2, one line naming the problem, and no file written.
TEST_F(GenerateCli, BadRequestsExit2AndWriteNothing) {
  KK_REQUIRE_GOLDEN();
  const std::string o = out("x.png").string();
  const std::string prompt = "a cat";
  struct Bad {
    std::vector<std::string> args;
    std::string message;
  };
  const std::vector<Bad> cases = {
      {{"--model", "/nonexistent/model", "--prompt", prompt, "--output", o}, "/nonexistent/model"},
      {{"--model", model(), "--prompt", prompt, "--height", "65", "--output", o}, "divisible by 8"},
      {{"--model", model(), "--prompt", prompt, "--width", "100000", "--output", o}, "width"},
      {{"--model", model(), "--prompt", prompt, "--steps", "0", "--output", o}, "num_inference_steps"},
      {{"--model", model(), "--prompt", prompt, "--guidance", "nan", "--output", o}, "guidance"},
      {{"--model", model(), "--prompt", "a", "--prompt", "b", "--seed", "1", "--seed", "2", "--seed", "3", "--output",
        o},
       "3 seeds"},
      {{"--model", model(), "--prompt", prompt, "--scheduler", "NoSuchScheduler", "--output", o}, "NoSuchScheduler"},
      {{"--model", model(), "--prompt", prompt, "--scheduler", "EulerDiscreteScheduler", "--scheduler-option",
        "no_such_option=1", "--output", o},
       "no_such_option"},
      {{"--model", model(), "--prompt", prompt, "--scheduler-option", "novalue", "--output", o}, "key=value"},
      {{"--model", model(), "--prompt", prompt, "--grid", "2x2", "--output", o}, "--grid"},
      {{"--model", model(), "--prompt", prompt, "--dtype", "fp8", "--output", o}, "--dtype"},
      {{"--model", model(), "--prompt", prompt, "--seed", "abc", "--output", o}, "--seed"},
      {{"--model", model(), "--prompt", prompt, "--output", (dir_ / "missing" / "x.png").string()}, "does not exist"},
      {{"--model", model(), "--prompt", prompt, "--vae", "/nonexistent/vae", "--output", o}, "/nonexistent/vae"},
  };
  for (const Bad& bad : cases) {
    const CliRun r = run(bad.args);
    EXPECT_EQ(r.exit_code, 2) << bad.message << "\n" << r.err;
    EXPECT_NE(r.err.find(bad.message), std::string::npos) << r.err;
    EXPECT_LE(std::count(r.err.begin(), r.err.end(), '\n'), 1) << r.err;
    EXPECT_TRUE(files_written().empty()) << bad.message;
  }
  // A missing required flag is a command-line parse error: also exit 2, nothing written.
  const CliRun r = run({"--model", model(), "--output", o});
  EXPECT_EQ(r.exit_code, 2) << r.err;
  EXPECT_NE(r.err.find("--prompt"), std::string::npos) << r.err;
  EXPECT_TRUE(files_written().empty());
}

}  // namespace
}  // namespace kakusan
