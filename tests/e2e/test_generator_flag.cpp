// `kakusan generate --generator cuda` end to end on the tiny model: the saved init_noise is torch's CUDA
// draw for the seed, the PNG text says "RNG: NV" (A1111's name for NVIDIA-compatible noise), and bad values
// exit 2 with one line.
#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <string>
#include <vector>

#include "io/png.h"
#include "io/safetensors.h"
#include "support/child_process.h"
#include "support/golden.h"

namespace kakusan {
namespace {

namespace fs = std::filesystem;

class GeneratorFlag : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() / ("kakusan_e2e_generator_" + std::to_string(getpid()) + "_" +
                                        ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir_);
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }

  struct Run {
    int exit_code = -1;
    std::string err;
  };
  Run generate(std::vector<std::string> args) {
    const std::string model = (*testing::golden_dir() / "tiny-sd").string();
    args.insert(args.begin(), {"generate", "--model", model, "--prompt", "a cat", "--steps", "2", "--quiet"});
    testing::ChildProcess child(KAKUSAN_CLI_PATH, args, dir_);
    const testing::ChildEnd end = child.wait(std::chrono::minutes(5), std::chrono::milliseconds(10));
    return {end.status && WIFEXITED(*end.status) ? WEXITSTATUS(*end.status) : -1, child.stderr_text()};
  }

  fs::path dir_;
};

TEST_F(GeneratorFlag, CudaSeedsTheTorchCudaNoise) {
  KK_REQUIRE_GOLDEN();
  const Run r = generate({"--seed", "0", "--generator", "cuda", "--output", (dir_ / "nv.png").string(),
                          "--save-tensors", (dir_ / "nv.safetensors").string()});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const SafetensorsFile saved = SafetensorsFile::open(dir_ / "nv.safetensors");
  const TensorView noise = saved.view("init_noise");
  EXPECT_EQ(noise.shape, (Shape{1, 4, 8, 8}));
  // torch.randn((1, 4, 8, 8), generator=torch.Generator("cuda").manual_seed(0)) starts as the (3, 4) draw.
  const float torch_cuda[] = {-0.9246624f, -0.4253442f, -2.6438458f, 0.1451839f, -0.1208664f};
  for (int i = 0; i < 5; ++i) EXPECT_NEAR(noise.f32()[i], torch_cuda[i], 1e-6) << i;
  const PngContents png = read_png(dir_ / "nv.png");
  ASSERT_EQ(png.text.size(), 1u);
  EXPECT_NE(png.text[0].second.find(", RNG: NV"), std::string::npos) << png.text[0].second;

  // The CPU generator (the default) saves its own draw and no RNG entry.
  ASSERT_EQ(generate({"--seed", "0", "--output", (dir_ / "cpu.png").string(), "--save-tensors",
                      (dir_ / "cpu.safetensors").string()})
                .exit_code,
            0);
  EXPECT_NEAR(SafetensorsFile::open(dir_ / "cpu.safetensors").view("init_noise").f32()[0], -1.1258398f, 1e-6);
  EXPECT_EQ(read_png(dir_ / "cpu.png").text[0].second.find("RNG:"), std::string::npos);
}

TEST_F(GeneratorFlag, BadValuesExit2WithOneLine) {
  KK_REQUIRE_GOLDEN();
  const std::vector<std::pair<std::vector<std::string>, std::string>> cases = {
      {{"--generator", "gpu"}, "--generator \"gpu\""},
      {{"--generator", "cuda", "--cuda-sm-count", "0"}, "--cuda-sm-count"},
      {{"--generator", "cuda", "--cuda-sm-count", "abc"}, "--cuda-sm-count"},
      {{"--generator", "cuda", "--cuda-threads-per-sm", "128"},
       "--cuda-threads-per-sm \"128\" is not an integer in 256..65536"},
  };
  for (const auto& [args, message] : cases) {
    std::vector<std::string> full = args;
    full.insert(full.end(), {"--output", (dir_ / "x.png").string()});
    const Run r = generate(full);
    EXPECT_EQ(r.exit_code, 2) << message << "\n" << r.err;
    EXPECT_NE(r.err.find(message), std::string::npos) << r.err;
    EXPECT_LE(std::count(r.err.begin(), r.err.end(), '\n'), 1) << r.err;
    EXPECT_FALSE(fs::exists(dir_ / "x.png"));
  }
}

}  // namespace
}  // namespace kakusan
