// The C API: defaults, errors as status + message, and one generation against the kit's case b.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "io/png.h"
#include "c_api_params.h"
#include "kakusan/kakusan.h"
#include "support/golden.h"
#include "support/separate_heap_backend.h"

namespace kakusan {
namespace {

const char* const kCaseBPrompt[] = {"portrait photo of a old warrior chief"};
const uint64_t kCaseBSeed[] = {0};

// The kit's tiny SD with case b's scheduler, weights in `dtype` (the C API's names; NULL: as stored), on
// `device` (NULL: the CPU).
kakusan_context* load_case_b(const char* dtype, const char* device = nullptr) {
  const std::string model = (*testing::golden_dir() / "tiny-sd").string();
  kakusan_load_params lp = kakusan_default_load_params();
  lp.scheduler = "DPMSolverMultistepScheduler";
  lp.dtype = dtype;
  lp.device = device;
  return kakusan_load(model.c_str(), &lp);
}

// A device that captures and replays as a GPU does (support/separate_heap_backend.h), for the C API's
// CUDA-graph switch.
const char* const kCapturingDevice = "separate-heap-c-api";
testing::SeparateHeapBackend& capturing_device() { return testing::registered_separate_heap(kCapturingDevice); }
const bool capturing_device_registered = [] {
  capturing_device();
  return true;
}();

// The largest difference, in 8-bit levels, between image 0 of `out` and case b's golden PNG.
int worst_level_difference_from_case_b(const kakusan_images* out) {
  int width = 0, height = 0;
  const uint8_t* rgb = kakusan_images_rgb(out, 0, &width, &height);
  const Image want = read_png(*testing::golden_dir() / "pipeline" / "b_dpm20_0.png").image;
  if (rgb == nullptr || size_t(width) * size_t(height) * 3 != want.rgb.size()) return 256;
  int worst = 0;
  for (size_t i = 0; i < want.rgb.size(); ++i) worst = std::max(worst, std::abs(int(rgb[i]) - int(want.rgb[i])));
  return worst;
}

TEST(CApi, DefaultsAreDiffusers) {
  const kakusan_params p = kakusan_default_params();
  EXPECT_EQ(p.num_inference_steps, 50);
  EXPECT_FLOAT_EQ(p.guidance_scale, 7.5f);
  EXPECT_EQ(p.num_images_per_prompt, 1);
  EXPECT_EQ(p.height, 0);
  EXPECT_EQ(p.clip_skip, -1);
  EXPECT_EQ(p.attention_slice_size, -1);
  EXPECT_EQ(p.vae_tile_size, 0);
  EXPECT_EQ(p.stream_unet_weights, 0);
  EXPECT_EQ(p.low_memory, 0);
  EXPECT_EQ(p.prompts, nullptr);
  const kakusan_load_params lp = kakusan_default_load_params();
  EXPECT_EQ(lp.scheduler, nullptr);
  EXPECT_EQ(lp.n_threads, 0);
  EXPECT_STREQ(kakusan_status_string(KAKUSAN_ERROR_CANCELLED), "cancelled");
}

TEST(CApi, LoadFailureLeavesAMessage) {
  EXPECT_EQ(kakusan_load(nullptr, nullptr), nullptr);
  EXPECT_NE(std::strstr(kakusan_last_error(), "NULL"), nullptr);
  EXPECT_EQ(kakusan_load("/nonexistent/model", nullptr), nullptr);
  EXPECT_NE(std::strstr(kakusan_last_error(), "/nonexistent/model"), nullptr) << kakusan_last_error();
  kakusan_free(nullptr);           // allowed, like free()
  kakusan_images_free(nullptr);
  EXPECT_EQ(kakusan_images_count(nullptr), 0);
}

TEST(CApi, GeneratesCaseB) {
  KK_REQUIRE_GOLDEN();
  kakusan_context* ctx = load_case_b(nullptr);
  ASSERT_NE(ctx, nullptr) << kakusan_last_error();
  kakusan_params p = testing::one_image_params(kCaseBPrompt, kCaseBSeed, 20);
  kakusan_images* out = nullptr;
  ASSERT_EQ(kakusan_generate(ctx, &p, &out), KAKUSAN_OK) << kakusan_last_error();
  ASSERT_EQ(kakusan_images_count(out), 1);
  int width = 0, height = 0;
  const uint8_t* rgb = kakusan_images_rgb(out, 0, &width, &height);
  ASSERT_NE(rgb, nullptr);
  EXPECT_EQ(width, 64);
  EXPECT_EQ(height, 64);
  EXPECT_EQ(kakusan_images_seed(out, 0), 0u);
  EXPECT_EQ(kakusan_images_rgb(out, 1, &width, &height), nullptr);
  EXPECT_LE(worst_level_difference_from_case_b(out), 1);
  kakusan_images_free(out);

  // Streamed UNet weights (low-memory mode): the same image.
  p.stream_unet_weights = 1;
  out = nullptr;
  ASSERT_EQ(kakusan_generate(ctx, &p, &out), KAKUSAN_OK) << kakusan_last_error();
  EXPECT_LE(worst_level_difference_from_case_b(out), 1);
  kakusan_images_free(out);
  p.stream_unet_weights = 0;

  // Low-memory mode, the CLI's --low-memory (streamed weights, 256-pixel VAE tiles: one tile at 64x64): the
  // same image.
  p.low_memory = 1;
  out = nullptr;
  ASSERT_EQ(kakusan_generate(ctx, &p, &out), KAKUSAN_OK) << kakusan_last_error();
  EXPECT_LE(worst_level_difference_from_case_b(out), 1);
  kakusan_images_free(out);
  p.low_memory = 0;

  // Bad parameters: a status and a message, no images.
  p.num_inference_steps = 0;
  out = nullptr;
  EXPECT_EQ(kakusan_generate(ctx, &p, &out), KAKUSAN_ERROR_INVALID_ARGUMENT);
  EXPECT_EQ(out, nullptr);
  EXPECT_NE(std::strstr(kakusan_last_error(), "num_inference_steps"), nullptr) << kakusan_last_error();

  // A callback that cancels.
  p.num_inference_steps = 3;
  p.callback = [](int step, int, double, void* user_data) {
    *static_cast<int*>(user_data) = step;
    return 0;
  };
  int seen = -1;
  p.callback_user_data = &seen;
  EXPECT_EQ(kakusan_generate(ctx, &p, &out), KAKUSAN_ERROR_CANCELLED);
  EXPECT_EQ(seen, 0);
  kakusan_free(ctx);
}

// kakusan_params::disable_cuda_graphs: by default the UNet step is captured on the loop's second step and
// replayed after (on a device that captures); 1 runs every step's ops one by one. The same pixels either way.
TEST(CApi, CudaGraphsAreOnByDefaultAndCanBeTurnedOff) {
  KK_REQUIRE_GOLDEN();
  ASSERT_TRUE(capturing_device_registered);
  EXPECT_EQ(kakusan_default_params().disable_cuda_graphs, 0);
  kakusan_context* ctx = load_case_b(nullptr, kCapturingDevice);
  ASSERT_NE(ctx, nullptr) << kakusan_last_error();
  kakusan_params p = testing::one_image_params(kCaseBPrompt, kCaseBSeed, 4);
  std::vector<uint8_t> images[2];
  int64_t replayed[2] = {0, 0};
  for (int disable : {0, 1}) {
    p.disable_cuda_graphs = disable;
    const int64_t before = capturing_device().replayed_ops();
    kakusan_images* out = nullptr;
    ASSERT_EQ(kakusan_generate(ctx, &p, &out), KAKUSAN_OK) << kakusan_last_error();
    replayed[disable] = capturing_device().replayed_ops() - before;
    int width = 0, height = 0;
    const uint8_t* rgb = kakusan_images_rgb(out, 0, &width, &height);
    ASSERT_NE(rgb, nullptr);
    images[disable].assign(rgb, rgb + size_t(width) * size_t(height) * 3);
    kakusan_images_free(out);
  }
  EXPECT_GT(replayed[0], 0) << "graphs on: the step was never replayed";
  EXPECT_EQ(replayed[1], 0) << "graphs off: a step was replayed";
  EXPECT_EQ(images[0], images[1]);
  kakusan_free(ctx);
}

// kakusan_load_params::dtype "bf16" (torch_dtype=torch.bfloat16): case b lands as close to the fp32 golden as
// diffusers' own bf16 pipeline (tests/golden/bf16/diffusers_bf16.json: 0.0174 of the image range at most,
// 5 levels of 255), plus one level for the 8-bit rounding; and not on the fp32 image itself.
TEST(CApi, GeneratesCaseBInBf16) {
  KK_REQUIRE_GOLDEN();
  kakusan_context* ctx = load_case_b("bf16");
  ASSERT_NE(ctx, nullptr) << kakusan_last_error();
  const kakusan_params p = testing::one_image_params(kCaseBPrompt, kCaseBSeed, 20);
  kakusan_images* out = nullptr;
  ASSERT_EQ(kakusan_generate(ctx, &p, &out), KAKUSAN_OK) << kakusan_last_error();
  const int worst = worst_level_difference_from_case_b(out);
  EXPECT_LE(worst, 6);
  EXPECT_GT(worst, 0);
  kakusan_images_free(out);
  kakusan_free(ctx);
}

}  // namespace
}  // namespace kakusan
