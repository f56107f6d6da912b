// The C API's image-to-image / inpainting fields: image, mask_image and strength reach the pipeline (the
// result equals diffusers' golden within one level), the default strength is the pipeline's, and a bad
// strength or image is an INVALID_ARGUMENT with a message.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <filesystem>
#include <string>

#include "io/safetensors.h"
#include "c_api_params.h"
#include "kakusan/kakusan.h"
#include "support/golden.h"

namespace kakusan {
namespace {

const std::filesystem::path kGoldens = std::filesystem::path(KAKUSAN_SOURCE_DIR) / "tests" / "golden" / "img2img";

int worst_level_difference(const uint8_t* rgb, const TensorView& want) {
  int worst = 0;
  for (int64_t i = 0; i < want.numel(); ++i)
    worst = std::max(worst, std::abs(int(rgb[i]) - int(std::lround(want.f32()[i] * 255.0f))));
  return worst;
}

TEST(CApiImageToImage, InpaintsLikeDiffusersAndRejectsBadStrength) {
  KK_REQUIRE_GOLDEN();
  EXPECT_LT(kakusan_default_params().strength, 0.0f);  // the pipeline's default
  kakusan_context* ctx = kakusan_load((*testing::golden_dir() / "tiny-sd").string().c_str(), nullptr);
  ASSERT_NE(ctx, nullptr) << kakusan_last_error();
  const char* prompts[] = {"portrait photo of a old warrior chief"};
  const uint64_t seeds[] = {0};
  const std::string image = (kGoldens / "input_64x64.png").string(), mask = (kGoldens / "mask_64x64.png").string();
  kakusan_params p = testing::one_image_params(prompts, seeds, 10);
  p.image = image.c_str();
  p.mask_image = mask.c_str();
  kakusan_images* out = nullptr;
  ASSERT_EQ(kakusan_generate(ctx, &p, &out), KAKUSAN_OK) << kakusan_last_error();
  ASSERT_EQ(kakusan_images_count(out), 1);
  int w = 0, h = 0;
  const uint8_t* rgb = kakusan_images_rgb(out, 0, &w, &h);
  EXPECT_EQ(w, 64);
  EXPECT_EQ(h, 64);
  const SafetensorsFile want = SafetensorsFile::open(kGoldens / "inpaint4_pndm_s100.safetensors");
  EXPECT_LE(worst_level_difference(rgb, want.view("image")), 1);
  kakusan_images_free(out);

  p.strength = 2.0f;
  out = nullptr;
  EXPECT_EQ(kakusan_generate(ctx, &p, &out), KAKUSAN_ERROR_INVALID_ARGUMENT);
  EXPECT_EQ(out, nullptr);
  EXPECT_NE(std::strstr(kakusan_last_error(), "strength"), nullptr) << kakusan_last_error();
  p.strength = 0.5f;
  p.image = "/nonexistent/input.png";
  EXPECT_EQ(kakusan_generate(ctx, &p, &out), KAKUSAN_ERROR_INVALID_ARGUMENT);
  EXPECT_NE(std::strstr(kakusan_last_error(), "/nonexistent/input.png"), nullptr) << kakusan_last_error();
  kakusan_free(ctx);
}

}  // namespace
}  // namespace kakusan
