// POST /sdapi/v1/img2img's parser: base64 PNGs decoded exactly as read_image reads the same file (every PNG
// mode), the txt2img fields shared, A1111's img2img fields, and hostile pictures as one-line 400s.
#include <gtest/gtest.h>
#include <png.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>

#include "io/png.h"
#include "kakusan/image.h"
#include "kakusan/pipeline.h"
#include "server/base64.h"
#include "server/image_request.h"
#include "../io/scratch_dir.h"

namespace kakusan::server {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;
const fs::path kGoldens = fs::path(KAKUSAN_SOURCE_DIR) / "tests" / "golden" / "img2img";

std::string file_bytes(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

std::string b64_file(const char* name) { return base64_encode(file_bytes(kGoldens / name)); }

std::string body_with(const json& fields) {
  json doc = {{"prompt", "x"}, {"steps", 10}, {"seed", 1}, {"init_images", {b64_file("input_64x64.png")}}};
  for (const auto& [key, value] : fields.items()) doc[key] = value;
  return doc.dump();
}

// The 400 of parsing and checking `body` (job_params runs generate_params' checks), "" if it is accepted.
std::string error_of(const std::string& body) {
  try {
    ImageJob job = parse_img2img(body, RequestLimits{});
    job_params(job, 7, 64, 64, RequestLimits{});
  } catch (const BadRequest& e) {
    EXPECT_EQ(std::string(e.what()).find('\n'), std::string::npos) << e.what();
    return e.what();
  }
  return "";
}

TEST(Base64, DecodeRoundTripsAndRefusesGarbage) {
  for (const std::string& s : std::vector<std::string>{"", "f", "fo", "foo", "foob", "fooba", "foobar", std::string("\xff\x00\x7f", 3)})
    EXPECT_EQ(base64_decode(base64_encode(s)), s);
  EXPECT_EQ(base64_decode("Zm9v\r\nYmE"), "fooba");  // line breaks and no padding, as clients send
  for (const char* bad : {"Zm9v!", "Z", "Zm9vY", "Zg=", "Zg===", "Zg==Zg==", "=Zg", "Zm9v Y=mE"})
    EXPECT_FALSE(base64_decode(bad).has_value()) << bad;
}

// A 5x6 PNG in a libpng simplified-API format (RGBA, grey, grey+alpha, 16-bit), with varied pixels.
std::string mode_png(png_uint_32 format) {
  png_image image{};
  image.version = PNG_IMAGE_VERSION;
  image.width = 5;
  image.height = 6;
  image.format = format;
  std::vector<uint8_t> pixels(PNG_IMAGE_SIZE(image));
  for (size_t i = 0; i < pixels.size(); ++i) pixels[i] = uint8_t(i * 37 + i / 7);
  png_alloc_size_t size = 0;
  EXPECT_TRUE(png_image_write_to_memory(&image, nullptr, &size, 0, pixels.data(), 0, nullptr));
  std::string bytes(size, '\0');
  EXPECT_TRUE(png_image_write_to_memory(&image, bytes.data(), &size, 0, pixels.data(), 0, nullptr));
  return bytes;
}

TEST(Img2ImgRequest, PicturesDecodeAsReadImageReadsTheFile) {
  testing::ScratchDir dir;
  const std::pair<const char*, std::string> pngs[] = {
      {"rgba", mode_png(PNG_FORMAT_RGBA)},
      {"grey", mode_png(PNG_FORMAT_GRAY)},
      {"grey_alpha", mode_png(PNG_FORMAT_GA)},
      {"rgba16", mode_png(PNG_FORMAT_LINEAR_RGB_ALPHA)},
      {"input_100x70", file_bytes(kGoldens / "input_100x70.png")},
  };
  for (const auto& [name, bytes] : pngs) {
    SCOPED_TRACE(name);
    // The data: URL prefix that browsers write is accepted too.
    ImageJob job = parse_img2img(
        body_with({{"init_images", {"data:image/png;base64," + base64_encode(bytes)}}, {"mask", base64_encode(bytes)}}),
        RequestLimits{});
    const Image want = read_image(dir.write(std::string(name) + ".png", bytes));
    ASSERT_EQ(job.request.images.size(), 1u);
    ASSERT_EQ(job.request.masks.size(), 1u);
    EXPECT_EQ(job.request.images[0].width, want.width);
    EXPECT_EQ(job.request.images[0].height, want.height);
    EXPECT_TRUE(job.request.images[0].rgb == want.rgb);
    EXPECT_TRUE(job.request.masks[0].rgb == want.rgb);
  }
}

TEST(Img2ImgRequest, ReadsA1111FieldsAndSharesTxt2Img) {
  ImageJob job = parse_img2img(body_with({{"negative_prompt", "blur"}, {"cfg_scale", 5.5}, {"sampler_name", "Euler a"},
                                          {"mask_blur", 4}, {"inpaint_full_res", true}}),
                               RequestLimits{});
  EXPECT_EQ(job.request.negative_prompts, std::vector<std::string>{"blur"});
  EXPECT_EQ(job.request.guidance_scale, 5.5);
  EXPECT_EQ(job.sampler, "Euler a");
  EXPECT_EQ(job.request.strength, 0.75);  // A1111's default denoising strength
  EXPECT_TRUE(job.request.masks.empty());
  ASSERT_EQ(job.notes.size(), 2u);  // A1111's mask blur and full-resolution inpainting are not done: said so
  EXPECT_NE((job.notes[0] + job.notes[1]).find("mask_blur"), std::string::npos) << job.notes[0];
  const GenerateParams p = job_params(job, 7, 512, 512, RequestLimits{});
  EXPECT_EQ(p.image.size(), 1u);
  EXPECT_EQ(p.strength, 0.75);
  EXPECT_EQ(parse_img2img(body_with({{"denoising_strength", 0.3}}), RequestLimits{}).request.strength, 0.3);
}

TEST(Img2ImgRequest, InvertedMaskRepaintsWhatTheMaskKeeps) {
  ImageJob job = parse_img2img(body_with({{"mask", b64_file("input_100x70.png")}, {"inpainting_mask_invert", 1}}),
                               RequestLimits{});
  const Image mask = read_image(kGoldens / "input_100x70.png");  // a colour picture: luma, not per channel
  ASSERT_EQ(job.request.masks.size(), 1u);
  const Image& inverted = job.request.masks[0];
  ASSERT_EQ(inverted.rgb.size(), mask.rgb.size());
  for (size_t i = 0; i < mask.rgb.size(); i += 3) {
    // PIL: ImageOps.invert(mask.convert("L")); grey, so the pipeline's convert("L") gives it back unchanged.
    const int luma = (mask.rgb[i] * 19595 + mask.rgb[i + 1] * 38470 + mask.rgb[i + 2] * 7471 + 0x8000) >> 16;
    ASSERT_EQ(inverted.rgb[i], 255 - luma) << "pixel " << i / 3;
    ASSERT_EQ(inverted.rgb[i + 1], inverted.rgb[i]);
    ASSERT_EQ(inverted.rgb[i + 2], inverted.rgb[i]);
  }
}

TEST(Img2ImgRequest, HostilePicturesAndBadFieldsAreOneLine400s) {
  const std::string good = file_bytes(kGoldens / "input_64x64.png");
  std::string wide_header = good.substr(0, 33);  // IHDR says 100000 pixels wide
  wide_header[16] = 0, wide_header[17] = 1, wide_header[18] = char(0x86), wide_header[19] = char(0xa0);
  const Image huge{kMaxImageSide + 8, 8, std::vector<uint8_t>(size_t(kMaxImageSide + 8) * 8 * 3)};
  const std::pair<json, std::string> cases[] = {
      {{{"init_images", nullptr}}, "\"init_images\" must be a non-empty list"},
      {{{"init_images", json::array()}}, "\"init_images\" must be a non-empty list"},
      {{{"init_images", {42}}}, "\"init_images\"[0] must be a base64 PNG string"},
      {{{"init_images", {"not base64!"}}}, "\"init_images\"[0] is not valid base64"},
      {{{"init_images", {"data:image/png,abc"}}}, "without ;base64"},
      {{{"init_images", {""}}}, "not a readable PNG"},
      {{{"init_images", {base64_encode("not a png at all")}}}, "not a readable PNG"},
      {{{"init_images", {base64_encode(good.substr(0, good.size() / 2))}}}, "not a readable PNG"},
      {{{"init_images", {base64_encode(wide_header + good.substr(33))}}}, "not a readable PNG"},
      {{{"init_images", {base64_encode(encode_png(huge))}}}, "not a readable PNG"},
      {{{"mask", "@@@@"}}, "\"mask\" is not valid base64"},
      {{{"mask", b64_file("input_100x70.png")}}, "the mask is 100x70 but the image is 64x64"},
      {{{"denoising_strength", 1.5}}, "\"denoising_strength\" must be a number in 0..1"},
      {{{"denoising_strength", "high"}}, "\"denoising_strength\" must be a number"},
      {{{"inpainting_mask_invert", 2}}, "\"inpainting_mask_invert\""},
      {{{"resize_mode", 1}}, "\"resize_mode\" must be 0"},
      {{{"steps", 2}, {"denoising_strength", 0.2}}, "After adjusting the num_inference_steps"},  // int(0.4) = 0
      {{{"steps", "many"}}, "\"steps\" must be an integer"},        // the shared txt2img checks
  };
  for (const auto& [fields, message] : cases) {
    const std::string error = error_of(body_with(fields));
    EXPECT_NE(error.find(message), std::string::npos) << fields.dump().substr(0, 200) << " -> " << error;
  }
  EXPECT_EQ(error_of(body_with({{"mask", b64_file("mask_64x64.png")}})), "");
}

TEST(Img2ImgRequest, PixelLimitCountsThePicturesSize) {
  RequestLimits small;
  small.max_pixels = 64 * 64 - 1;
  ImageJob job = parse_img2img(body_with({}), small);
  try {
    job_params(job, 7, 8, 8, small);  // the server's default size is not the picture's
    ADD_FAILURE() << "a 64x64 picture passed a limit of " << small.max_pixels << " pixels";
  } catch (const BadRequest& e) {
    EXPECT_NE(std::string(e.what()).find("64x64"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace kakusan::server
