// Images from float tensors, diffusers' image grid, and PNG writing/reading with text chunks.
#include "io/png.h"

#include <gtest/gtest.h>

#include <cmath>
#include <fstream>
#include <iterator>
#include <limits>
#include <string>

#include "io/image.h"
#include "io/scratch_dir.h"
#include "support/golden.h"

namespace kakusan {
namespace {

namespace fs = std::filesystem;
using testing::ScratchDir;

Image solid(int width, int height, uint8_t r, uint8_t g, uint8_t b) {
  Image image{width, height, {}};
  for (int i = 0; i < width * height; ++i) image.rgb.insert(image.rgb.end(), {r, g, b});
  return image;
}

Image gradient(int width, int height) {
  Image image{width, height, std::vector<uint8_t>(size_t(width * height * 3))};
  for (size_t i = 0; i < image.rgb.size(); ++i) image.rgb[i] = uint8_t(i * 7 + i / 5);
  return image;
}

size_t files_in(const fs::path& dir) {
  size_t n = 0;
  for ([[maybe_unused]] const auto& e : fs::directory_iterator(dir)) ++n;
  return n;
}

TEST(Image, ToU8RoundsLikeNumpy) {
  EXPECT_EQ(to_u8(0.0f), 0);
  EXPECT_EQ(to_u8(1.0f), 255);
  EXPECT_EQ(to_u8(-0.5f), 0);  // clamped, as the pipeline's clamp(0, 1)
  EXPECT_EQ(to_u8(7.0f), 255);
  EXPECT_EQ(to_u8(std::numeric_limits<float>::quiet_NaN()), 0);
  EXPECT_EQ(to_u8(0.5f), 128);  // 127.5 -> 128 (half to even)
  // x * 255 == k + 0.5 exactly in float32 for these: halves go to the even neighbour, as np.round does.
  for (int k = 0; k < 255; ++k) {
    const float x = (float(k) + 0.5f) / 255.0f;
    const float product = x * 255.0f;
    if (product != float(k) + 0.5f) continue;
    EXPECT_EQ(to_u8(x), k % 2 == 0 ? k : k + 1) << "k=" << k;
  }
  EXPECT_EQ(to_u8(100.4f / 255.0f), 100);
  EXPECT_EQ(to_u8(100.6f / 255.0f), 101);
}

TEST(Image, FromNhwcTensor) {
  Tensor t = Tensor::empty(Shape{2, 3, 4, 3});
  for (int64_t i = 0; i < t.numel(); ++i) t.f32()[i] = float(i % 256) / 255.0f;
  const std::vector<Image> images = images_from_nhwc(t);
  ASSERT_EQ(images.size(), 2u);
  EXPECT_EQ(images[1].width, 4);
  EXPECT_EQ(images[1].height, 3);
  ASSERT_EQ(images[1].rgb.size(), 36u);
  EXPECT_EQ(images[0].rgb[5], 5);
  EXPECT_EQ(images[1].rgb[0], 36);  // image 1 starts after 3*4*3 values
  EXPECT_THROW(images_from_nhwc(Tensor::empty(Shape{1, 3, 4, 4})), Error);  // 4 channels
  EXPECT_THROW(images_from_nhwc(Tensor::empty(Shape{3, 4, 3})), Error);     // rank 3
}

TEST(Image, GridLayoutMatchesDiffusers) {
  // 6 images of 2x1 pixels in 2 rows x 3 columns: image i at column i % 3, row i / 3.
  std::vector<Image> images;
  for (int i = 0; i < 6; ++i) images.push_back(solid(2, 1, uint8_t(10 * i), uint8_t(i), 0));
  const Image grid = make_image_grid(images, 2, 3);
  ASSERT_EQ(grid.width, 6);
  ASSERT_EQ(grid.height, 2);
  auto pixel_red = [&](int x, int y) { return grid.rgb[size_t((y * grid.width + x) * 3)]; };
  for (int i = 0; i < 6; ++i) {
    const int x0 = (i % 3) * 2, y0 = i / 3;
    EXPECT_EQ(pixel_red(x0, y0), 10 * i) << i;
    EXPECT_EQ(pixel_red(x0 + 1, y0), 10 * i) << i;
  }
  EXPECT_THROW(make_image_grid(images, 2, 2), Error);  // 4 cells, 6 images
  EXPECT_THROW(make_image_grid(images, 0, 6), Error);
  images[3] = solid(3, 1, 0, 0, 0);
  EXPECT_THROW(make_image_grid(images, 2, 3), Error);  // sizes differ
}

TEST(Png, FormatParameters) {
  GenerationInfo info;
  info.prompt = "portrait photo of a old warrior chief";
  info.negative_prompt = "blurry";
  info.steps = 20;
  info.sampler = "DPMSolverMultistepScheduler";
  info.cfg_scale = 7.5;
  info.seed = 18446744073709551615ull;
  info.width = 512;
  info.height = 768;
  info.model = "runwayml/stable-diffusion-v1-5";
  EXPECT_EQ(format_parameters(info),
            "portrait photo of a old warrior chief\nNegative prompt: blurry\nSteps: 20, Sampler: "
            "DPMSolverMultistepScheduler, CFG scale: 7.5, Seed: 18446744073709551615, Size: 512x768, Model: "
            "runwayml/stable-diffusion-v1-5");
  info.negative_prompt.clear();
  info.cfg_scale = 7;
  info.extra = {{"Clip skip", "2"}};
  EXPECT_EQ(format_parameters(info),
            "portrait photo of a old warrior chief\nSteps: 20, Sampler: DPMSolverMultistepScheduler, CFG scale: 7, "
            "Seed: 18446744073709551615, Size: 512x768, Model: runwayml/stable-diffusion-v1-5, Clip skip: 2");
}

TEST(Png, RoundTripWithText) {
  ScratchDir dir;
  const Image image = gradient(17, 5);
  const std::string utf8 = "侍 warrior, café";
  const fs::path path = dir / "out.png";
  write_png(path, image, {{"parameters", "a prompt\nSteps: 20"}, {"Comment", utf8}});
  const PngContents back = read_png(path);
  EXPECT_EQ(back.image.width, 17);
  EXPECT_EQ(back.image.height, 5);
  EXPECT_EQ(back.image.rgb, image.rgb);
  ASSERT_EQ(back.text.size(), 2u);
  EXPECT_EQ(back.text[0].first, "parameters");
  EXPECT_EQ(back.text[0].second, "a prompt\nSteps: 20");
  EXPECT_EQ(back.text[1].second, utf8);  // non-ASCII text survives (stored as iTXt)
  EXPECT_EQ(files_in(dir.path()), 1u);  // no temporary left behind

  // The chunks are where other tools look: a tEXt chunk "parameters\0..." in the file bytes.
  std::ifstream in(path, std::ios::binary);
  const std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  EXPECT_EQ(bytes.substr(1, 3), "PNG");
  EXPECT_NE(bytes.find(std::string("tEXtparameters\0a prompt", 23)), std::string::npos);
  EXPECT_NE(bytes.find("iTXtComment"), std::string::npos);
}

TEST(Png, FailedWritesLeaveNoFile) {
  ScratchDir dir;
  const fs::path path = dir / "out.png";
  Image bad = gradient(4, 4);
  bad.rgb.pop_back();
  EXPECT_THROW(write_png(path, bad), Error);                                 // wrong byte count
  EXPECT_THROW(write_png(path, Image{0, 4, {}}), Error);                     // empty image
  EXPECT_THROW(write_png(path, gradient(2, 2), {{"", "x"}}), Error);         // empty keyword
  EXPECT_THROW(write_png(path, gradient(2, 2), {{"k\xc3\xa9y", "x"}}), Error);  // non-ASCII keyword
  EXPECT_THROW(write_png(path, gradient(2, 2), {{std::string(80, 'k'), "x"}}), Error);
  EXPECT_THROW(write_png(path, gradient(2, 2), {{"k", std::string("a\0b", 3)}}), Error);
  EXPECT_THROW(write_png(dir / "missing/out.png", gradient(2, 2)), Error);
  EXPECT_EQ(files_in(dir.path()), 0u);

  // An existing file is only ever replaced by a complete new one.
  write_png(path, solid(3, 3, 1, 2, 3));
  EXPECT_THROW(write_png(path, bad), Error);
  EXPECT_EQ(read_png(path).image.rgb, solid(3, 3, 1, 2, 3).rgb);
  EXPECT_EQ(files_in(dir.path()), 1u);
}

TEST(Png, ReadRejectsCorruptFiles) {
  ScratchDir dir;
  EXPECT_THROW(read_png(dir / "missing.png"), Error);
  EXPECT_THROW(read_png(dir.write("text.png", "not a png at all")), Error);
  write_png(dir / "good.png", gradient(8, 8));
  std::ifstream in(dir / "good.png", std::ios::binary);
  const std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  for (size_t cut : {size_t(0), size_t(8), size_t(20), bytes.size() / 2, bytes.size() - 13}) {
    try {
      read_png(dir.write("cut.png", bytes.substr(0, cut)));
      ADD_FAILURE() << "truncated at " << cut << " was accepted";
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find("cut.png"), std::string::npos) << e.what();
    }
  }
}

// decode_png reads bytes in memory exactly as read_png reads the same file, and refuses what read_png
// refuses, naming its label.
TEST(Png, DecodeFromMemoryAgreesWithTheFileReader) {
  ScratchDir dir;
  write_png(dir / "good.png", gradient(8, 5), {{"parameters", "a cat"}});
  std::ifstream in(dir / "good.png", std::ios::binary);
  const std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  const PngContents decoded = decode_png(bytes, "request");
  EXPECT_EQ(decoded.image.rgb, read_png(dir / "good.png").image.rgb);
  EXPECT_EQ(decoded.text, read_png(dir / "good.png").text);
  for (size_t cut : {size_t(0), size_t(8), size_t(20), bytes.size() / 2, bytes.size() - 13}) {
    try {
      decode_png(bytes.substr(0, cut), "request");
      ADD_FAILURE() << "truncated at " << cut << " was accepted";
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find("request: not a readable PNG"), std::string::npos) << e.what();
    }
  }
  EXPECT_THROW(decode_png(bytes, "request", 7), Error);  // 8 pixels wide: over the side limit
  EXPECT_THROW(decode_png("not a png at all", "request"), Error);
}

// The kit's PNGs were written by diffusers (numpy_to_pil + PIL); converting the float images stored beside
// them must give exactly the same pixels.
TEST(PngGolden, KitImagesMatchTheirFloatTensors) {
  KK_REQUIRE_GOLDEN();
  int compared = 0;
  for (const auto& entry : fs::directory_iterator(*testing::golden_dir() / "pipeline")) {
    if (entry.path().extension() != ".safetensors") continue;
    const SafetensorsFile file = SafetensorsFile::open(entry.path());
    const std::vector<Image> images = images_from_nhwc(file.view("image"));
    for (size_t i = 0; i < images.size(); ++i) {
      const fs::path png = entry.path().parent_path() / (entry.path().stem().string() + "_" + std::to_string(i) + ".png");
      ASSERT_TRUE(fs::exists(png)) << png;
      const PngContents kit = read_png(png);
      ASSERT_EQ(kit.image.width, images[i].width) << png;
      ASSERT_EQ(kit.image.height, images[i].height) << png;
      size_t differ = 0;
      for (size_t k = 0; k < kit.image.rgb.size(); ++k) differ += kit.image.rgb[k] != images[i].rgb[k];
      EXPECT_EQ(differ, 0u) << png;
      ++compared;
    }
  }
  EXPECT_GE(compared, 20);
}

}  // namespace
}  // namespace kakusan
