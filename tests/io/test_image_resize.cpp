// resize_lanczos against Pillow's Image.resize(size, LANCZOS) (tests/golden/img2img/make_goldens.py wrote
// the expected pixels): exact equality, downscaling, upscaling and a strong anisotropic downscale.
#include <gtest/gtest.h>

#include <filesystem>

#include "io/image_resize.h"
#include "io/png.h"
#include "io/safetensors.h"

namespace kakusan {
namespace {

const std::filesystem::path kGoldens = std::filesystem::path(KAKUSAN_SOURCE_DIR) / "tests" / "golden" / "img2img";

void expect_resize_matches_pillow(const char* png, int width, int height, const std::string& name) {
  const Image in = read_png(kGoldens / png).image;
  const Image out = resize_lanczos(in, width, height);
  ASSERT_EQ(out.width, width);
  ASSERT_EQ(out.height, height);
  const SafetensorsFile want = SafetensorsFile::open(kGoldens / "resize.safetensors");
  const TensorView pixels = want.view(name);
  ASSERT_EQ(pixels.numel(), int64_t(out.rgb.size()));
  int differing = 0;
  for (size_t i = 0; i < out.rgb.size(); ++i) differing += float(out.rgb[i]) != pixels.f32()[i];
  EXPECT_EQ(differing, 0) << name << ": " << differing << " of " << out.rgb.size() << " values differ from Pillow";
}

TEST(ImageResize, DownscaleMatchesPillow) {
  expect_resize_matches_pillow("input_100x70.png", 96, 64, "100x70_to_96x64");
}
TEST(ImageResize, UpscaleMatchesPillow) { expect_resize_matches_pillow("input_64x64.png", 80, 72, "64x64_to_80x72"); }
TEST(ImageResize, StrongDownscaleMatchesPillow) {
  expect_resize_matches_pillow("input_100x70.png", 24, 40, "100x70_to_24x40");
}

TEST(ImageResize, SameSizeIsACopyAndZeroSizeIsAnError) {
  const Image in{2, 1, {1, 2, 3, 4, 5, 6}};
  EXPECT_EQ(resize_lanczos(in, 2, 1).rgb, in.rgb);
  EXPECT_THROW(resize_lanczos(in, 0, 1), Error);
  // One pixel stretched keeps its colour (the weights are normalised).
  const Image one{1, 1, {10, 200, 30}};
  const Image big = resize_lanczos(one, 3, 2);
  for (size_t i = 0; i < big.rgb.size(); ++i) EXPECT_EQ(big.rgb[i], one.rgb[i % 3]);
}

}  // namespace
}  // namespace kakusan
