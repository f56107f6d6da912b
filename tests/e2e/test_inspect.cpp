// `kakusan inspect` end to end: the built CLI on the kit's files and on broken input.
#include <gtest/gtest.h>
#include <sys/wait.h>

#include <chrono>
#include <limits>
#include <string>
#include <vector>

#include "core/half.h"
#include "io/safetensors.h"
#include "io/scratch_dir.h"
#include "support/child_process.h"
#include "support/golden.h"

namespace kakusan {
namespace {

struct RunResult {
  int exit_code = -1;
  std::string output;  // stdout and stderr together
};

// `kakusan args...`; its stdout and stderr together.
RunResult run_cli(const std::vector<std::string>& args) {
  const testing::ScratchDir logs;
  testing::ChildProcess child(KAKUSAN_CLI_PATH, args, logs.path());
  const testing::ChildEnd end = child.wait(std::chrono::minutes(2), std::chrono::milliseconds(5));
  RunResult result;
  result.exit_code = end.status && WIFEXITED(*end.status) ? WEXITSTATUS(*end.status) : -1;
  result.output = child.stdout_text() + child.stderr_text();
  return result;
}

size_t count_lines(const std::string& s) {
  size_t n = 0;
  for (char c : s) n += c == '\n';
  return n;
}

TEST(InspectCli, SafetensorsFileListsEveryTensor) {
  KK_REQUIRE_GOLDEN();
  const std::string unet = (*testing::golden_dir() / "tiny-sd/unet/diffusion_pytorch_model.safetensors").string();
  const RunResult r = run_cli({"inspect", unet});
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("conv_in.weight"), std::string::npos) << r.output.substr(0, 500);
  EXPECT_NE(r.output.find("[32, 4, 3, 3]"), std::string::npos);
  EXPECT_NE(r.output.find("F32"), std::string::npos);
  EXPECT_NE(r.output.find("684 tensors"), std::string::npos);
  EXPECT_GE(count_lines(r.output), 684u);  // one line per tensor, plus header and total
}

TEST(InspectCli, ModelFolderListsComponents) {
  KK_REQUIRE_GOLDEN();
  const RunResult r = run_cli({"inspect", (*testing::golden_dir() / "tiny-sd").string()});
  ASSERT_EQ(r.exit_code, 0) << r.output;
  for (const char* want : {"StableDiffusionPipeline", "UNet2DConditionModel", "AutoencoderKL", "CLIPTextModel",
                           "PNDMScheduler", "safety_checker", "684 tensors", "block_out_channels=[32,64,64,64]"})
    EXPECT_NE(r.output.find(want), std::string::npos) << want << " missing in:\n" << r.output;

  const RunResult vae = run_cli({"inspect", (*testing::golden_dir() / "tiny-vae-alt").string()});
  ASSERT_EQ(vae.exit_code, 0) << vae.output;
  EXPECT_NE(vae.output.find("AutoencoderKL"), std::string::npos) << vae.output;
  EXPECT_NE(vae.output.find("244 tensors"), std::string::npos) << vae.output;
}

// --check-weights reads every weight: a file with a NaN in an f16 tensor and an infinity in an f32 one names
// both (exit 1); the kit's model is all finite (exit 0).
TEST(InspectCli, CheckWeightsListsNonFiniteTensors) {
  testing::ScratchDir dir;
  Tensor fine = Tensor::full({4, 4}, 0.5f);
  Tensor with_inf = Tensor::full({3}, 1.0f);
  with_inf.f32()[1] = -std::numeric_limits<float>::infinity();
  Tensor with_nan = Tensor::full({2, 5}, 0.25f).to(DType::F16);
  static_cast<uint16_t*>(with_nan.data())[7] = 0x7e00;  // f16 quiet NaN
  const std::string path = (dir / "broken.safetensors").string();
  write_safetensors(path, {{"layer.weight", fine}, {"layer.bias", with_inf}, {"norm.weight", with_nan}});
  const RunResult r = run_cli({"inspect", "--check-weights", path});
  EXPECT_EQ(r.exit_code, 1) << r.output;
  EXPECT_NE(r.output.find("layer.bias: 0 NaN, 1 Inf of 3 values"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("norm.weight: 1 NaN, 0 Inf of 10 values"), std::string::npos) << r.output;
  EXPECT_EQ(r.output.find("non-finite: " + path + ": layer.weight"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("2 of 3 tensors hold NaN or infinite values"), std::string::npos) << r.output;

  KK_REQUIRE_GOLDEN();
  const RunResult ok = run_cli({"inspect", "--check-weights", (*testing::golden_dir() / "tiny-sd").string()});
  EXPECT_EQ(ok.exit_code, 0) << ok.output;
  EXPECT_NE(ok.output.find("are finite"), std::string::npos) << ok.output;
}

TEST(InspectCli, BadInputIsOneLineAndExitCode2) {
  testing::ScratchDir dir;
  const std::string corrupt = dir.write("corrupt.safetensors", std::string("\xff\xff\xff\xff\xff\xff\xff\x7f{}", 10)).string();
  const RunResult r = run_cli({"inspect", corrupt});
  EXPECT_EQ(r.exit_code, 2) << r.output;
  EXPECT_EQ(count_lines(r.output), 1u) << r.output;
  EXPECT_NE(r.output.find("corrupt.safetensors"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("header length"), std::string::npos) << r.output;

  const std::string truncated = dir.write("short.safetensors", "abc").string();
  const RunResult t = run_cli({"inspect", truncated});
  EXPECT_EQ(t.exit_code, 2) << t.output;
  EXPECT_NE(t.output.find("short.safetensors"), std::string::npos) << t.output;

  const RunResult empty_dir = run_cli({"inspect", dir.path().string()});
  EXPECT_EQ(empty_dir.exit_code, 2) << empty_dir.output;
  EXPECT_NE(empty_dir.output.find("model_index.json"), std::string::npos) << empty_dir.output;

  const RunResult missing = run_cli({"inspect", (dir / "nothing/here").string()});
  EXPECT_EQ(missing.exit_code, 2) << missing.output;
  EXPECT_NE(missing.output.find("nothing/here"), std::string::npos) << missing.output;

  const RunResult no_arg = run_cli({"inspect"});
  EXPECT_EQ(no_arg.exit_code, 2) << no_arg.output;
}

}  // namespace
}  // namespace kakusan
