// POST /sdapi/v1/img2img end to end with the kit's tiny model: image-to-image and inpainting (the mask as
// sent and inverted) give exactly `kakusan generate --image ... [--mask-image ...] --strength S`'s pixels and
// parameters text; bad pictures and values are 4xx JSON and the server stays healthy.
#include <gtest/gtest.h>

#include <fstream>

#include "kakusan/image.h"
#include "serve_fixture.h"
#include "server/base64.h"
#include "support/golden.h"

namespace kakusan {
namespace {

using namespace std::chrono_literals;
using nlohmann::json;
using testing::ServeProcess;
namespace fs = std::filesystem;

const fs::path kInputs = fs::path(KAKUSAN_SOURCE_DIR) / "tests" / "golden" / "img2img";

std::string tiny_model() { return (*testing::golden_dir() / "tiny-sd").string(); }

std::string b64_file(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  return server::base64_encode(std::string(std::istreambuf_iterator<char>(in), {}));
}

// Serves `fields` on /sdapi/v1/img2img, runs the CLI with `cli_args` and the same common values, and
// compares the two images byte for byte.
void expect_same_as_cli(ServeProcess& server, json fields, const std::vector<std::string>& cli_args,
                        const std::string& name) {
  SCOPED_TRACE(name);
  fields.update({{"prompt", "a red cube"}, {"negative_prompt", "blurry"}, {"steps", 6}, {"cfg_scale", 6.5},
                 {"seed", 99}, {"sampler_name", "Euler a"}});
  auto r = server.client()->Post("/sdapi/v1/img2img", fields.dump(), "application/json");
  ASSERT_TRUE(r);
  ASSERT_EQ(r->status, 200) << r->body;
  const json body = json::parse(r->body);
  ASSERT_EQ(body["images"].size(), 1u);
  const PngContents served = testing::png_of_base64(body["images"][0]);

  const fs::path out = server.dir() / (name + ".png");
  fs::create_directories(server.dir() / "cli");
  std::vector<std::string> args = {"generate", "--model", tiny_model(), "--prompt", "a red cube", "--prompt-syntax",
                                   "a1111", "--negative-prompt", "blurry", "--steps", "6", "--guidance", "6.5",
                                   "--seed", "99", "--scheduler", "Euler a", "--threads", "2", "--quiet",
                                   "--output", out.string()};
  args.insert(args.end(), cli_args.begin(), cli_args.end());
  testing::ChildProcess cli(KAKUSAN_CLI_PATH, args, server.dir() / "cli");
  ASSERT_EQ(cli.wait(120s, 10ms).status, 0) << cli.stderr_text();
  const PngContents generated = read_png(out);
  EXPECT_EQ(served.image.width, generated.image.width);
  EXPECT_EQ(served.image.height, generated.image.height);
  EXPECT_TRUE(served.image.rgb == generated.image.rgb) << "the served image differs from kakusan generate's";
  EXPECT_EQ(served.text, generated.text);  // the same `parameters` text, Denoising strength included
  const json info = json::parse(body["info"].get<std::string>());
  EXPECT_EQ(info["infotexts"][0], generated.text.at(0).second);
}

TEST(ServeImg2Img, EqualsKakusanGenerate) {
  KK_REQUIRE_GOLDEN();
  ServeProcess server(tiny_model(), {});
  ASSERT_TRUE(server.ready());
  const fs::path image = kInputs / "input_64x64.png", mask = kInputs / "mask_64x64.png";
  expect_same_as_cli(server,
                     {{"init_images", {"data:image/png;base64," + b64_file(image)}}, {"denoising_strength", 0.6}},
                     {"--image", image.string(), "--strength", "0.6"}, "img2img");
  // A1111's default strength (0.75), and a picture of another size resized to the requested one.
  expect_same_as_cli(server, {{"init_images", {b64_file(kInputs / "input_100x70.png")}}, {"width", 64}, {"height", 48}},
                     {"--image", (kInputs / "input_100x70.png").string(), "--strength", "0.75", "--width", "64",
                      "--height", "48"},
                     "resized");
  expect_same_as_cli(server,
                     {{"init_images", {b64_file(image)}}, {"mask", b64_file(mask)}, {"denoising_strength", 0.8}},
                     {"--image", image.string(), "--mask-image", mask.string(), "--strength", "0.8"}, "inpaint");
  // The inverted mask, written as a file for the CLI: grey 255 - luma, what ImageOps.invert(convert("L")) makes.
  Image inverted = read_image(mask);
  for (size_t i = 0; i < inverted.rgb.size(); i += 3) {
    const uint8_t* p = &inverted.rgb[i];
    const int luma = (p[0] * 19595 + p[1] * 38470 + p[2] * 7471 + 0x8000) >> 16;
    inverted.rgb[i] = inverted.rgb[i + 1] = inverted.rgb[i + 2] = uint8_t(255 - luma);
  }
  write_png(server.dir() / "inverted_mask.png", inverted);
  expect_same_as_cli(server,
                     {{"init_images", {b64_file(image)}}, {"mask", b64_file(mask)}, {"inpainting_mask_invert", 1},
                      {"denoising_strength", 0.8}},
                     {"--image", image.string(), "--mask-image", (server.dir() / "inverted_mask.png").string(),
                      "--strength", "0.8"},
                     "inverted");
}

void expect_json_error(const httplib::Result& r, int status, const std::string& message_part) {
  ASSERT_TRUE(r) << "no response";
  EXPECT_EQ(r->status, status) << r->body;
  const json body = json::parse(r->body, nullptr, false);
  ASSERT_TRUE(body.is_object()) << r->body;
  EXPECT_NE(body["error"]["message"].get<std::string>().find(message_part), std::string::npos) << r->body;
}

TEST(ServeImg2Img, BadRequestsGetJsonErrorsAndTheServerStaysHealthy) {
  KK_REQUIRE_GOLDEN();
  ServeProcess server(tiny_model(), {"--max-pixels", "4096"});
  ASSERT_TRUE(server.ready());
  auto http = server.client();
  const std::string image = b64_file(kInputs / "input_64x64.png");
  const auto post = [&](json fields) {
    fields.update({{"prompt", "x"}, {"seed", 1}});
    return http->Post("/sdapi/v1/img2img", fields.dump(), "application/json");
  };
  expect_json_error(post({{"init_images", {"%%%"}}}), 400, "not valid base64");
  expect_json_error(post({{"init_images", {server::base64_encode("GIF89a")}}}), 400, "not a readable PNG");
  expect_json_error(post({{"init_images", {b64_file(kInputs / "input_100x70.png")}}}), 400, "this server allows 4096");
  expect_json_error(post({{"init_images", {image}}, {"mask", b64_file(kInputs / "input_100x70.png")}}), 400,
                    "the mask is 100x70");
  expect_json_error(post({{"init_images", {image}}, {"denoising_strength", -0.1}}), 400, "denoising_strength");
  expect_json_error(post({{"init_images", {image}}, {"steps", 2}, {"denoising_strength", 0.3}}), 400,
                    "After adjusting the num_inference_steps");
  expect_json_error(post({{"init_images", {image}}, {"resize_mode", 2}}), 400, "resize_mode");
  expect_json_error(http->Post("/sdapi/v1/img2img", "{\"init_images\": [", "application/json"), 400, "not valid JSON");
  EXPECT_EQ(testing::body_of(http->Get("/health"))["status"], "ok");
  auto ok = post({{"init_images", {image}}, {"steps", 2}, {"mask_blur", 4}});
  ASSERT_TRUE(ok);
  ASSERT_EQ(ok->status, 200) << ok->body;
  const json info = json::parse(json::parse(ok->body)["info"].get<std::string>());
  EXPECT_NE(info["notes"].dump().find("mask_blur"), std::string::npos) << info.dump();
}

}  // namespace
}  // namespace kakusan
