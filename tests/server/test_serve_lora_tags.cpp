// `kakusan serve --lora-dir DIR` with A1111's <lora:NAME:W> prompt tags: requests with different tags in a row
// each get the image a fresh `kakusan generate --lora DIR/NAME.safetensors:W` makes, a request without tags the
// base model's image again (the server re-merges between requests), and bad tags are 400s that leave it serving.
#include <gtest/gtest.h>

#include "serve_fixture.h"
#include "support/golden.h"

namespace kakusan {
namespace {

using namespace std::chrono_literals;
using nlohmann::json;
using testing::ServeProcess;

std::string tiny_model() { return (*testing::golden_dir() / "tiny-sd").string(); }
std::filesystem::path formats_dir() { return std::filesystem::path(KAKUSAN_SOURCE_DIR) / "tests/golden/formats"; }

Image served_image(httplib::Client& http, const std::string& prompt) {
  const json request = {{"prompt", prompt}, {"steps", 4}, {"width", 64}, {"height", 64}, {"seed", 7},
                        {"sampler_name", "Euler"}, {"cfg_scale", 7}};
  auto r = http.Post("/sdapi/v1/txt2img", request.dump(), "application/json");
  EXPECT_TRUE(r && r->status == 200) << (r ? r->body : "no response");
  if (!r || r->status != 200) return {};
  return testing::png_of_base64(json::parse(r->body)["images"][0]).image;
}

// The image of a fresh process: `kakusan generate` with `lora_flags`.
Image generated_image(const ServeProcess& server, const std::string& name, const std::vector<std::string>& lora_flags) {
  const auto dir = server.dir() / name;
  std::filesystem::create_directories(dir);
  std::vector<std::string> args = {"generate", "--model", tiny_model(), "--prompt", "a red cube", "--steps", "4",
                                   "--width", "64", "--height", "64", "--seed", "7", "--scheduler", "Euler", "--guidance", "7",
                                   "--prompt-syntax", "a1111", "--quiet", "--output", (dir / "out.png").string()};
  args.insert(args.end(), lora_flags.begin(), lora_flags.end());
  testing::ChildProcess cli(KAKUSAN_CLI_PATH, args, dir);
  EXPECT_EQ(cli.wait(120s, 10ms).status, 0) << cli.stderr_text();
  return read_png(dir / "out.png").image;
}

TEST(ServeLoraTags, EachRequestGetsItsOwnLoraSet) {
  KK_REQUIRE_GOLDEN();
  ServeProcess server(tiny_model(), {"--lora-dir", formats_dir().string()});
  ASSERT_TRUE(server.ready());
  auto http = server.client();
  const Image kohya = served_image(*http, "a red cube <lora:lora_kohya:0.8>");
  const Image peft = served_image(*http, "<lora:lora_peft:-0.6> a red cube");
  const Image base = served_image(*http, "a red cube");
  const std::string dir = formats_dir().string();
  EXPECT_TRUE(kohya.rgb == generated_image(server, "kohya", {"--lora", dir + "/lora_kohya.safetensors:0.8"}).rgb);
  EXPECT_TRUE(peft.rgb == generated_image(server, "peft", {"--lora", dir + "/lora_peft.safetensors:-0.6"}).rgb);
  EXPECT_TRUE(base.rgb == generated_image(server, "base", {}).rgb) << "the LoRA weights were not restored";
  EXPECT_FALSE(kohya.rgb == base.rgb);
  EXPECT_FALSE(peft.rgb == base.rgb);
}

TEST(ServeLoraTags, BadTagsAre400sNamingNothingOfTheServer) {
  KK_REQUIRE_GOLDEN();
  ServeProcess server(tiny_model(), {"--lora-dir", formats_dir().string()});
  ASSERT_TRUE(server.ready());
  auto http = server.client();
  for (const char* prompt : {"x <lora:../formats/lora_kohya:1>", "x <lora:/etc/passwd>", "x <lora:nope:1>",
                             "x <lora:lora_kohya:nan>", "x <lora:lora_kohya:1e999>", "x <lora:lora_kohya:1"}) {
    auto r = http->Post("/sdapi/v1/txt2img", json{{"prompt", prompt}, {"steps", 1}}.dump(), "application/json");
    ASSERT_TRUE(r) << prompt;
    EXPECT_EQ(r->status, 400) << prompt << ": " << r->body;
    EXPECT_EQ(r->body.find(formats_dir().string()), std::string::npos) << r->body;
  }
  auto fine = http->Post("/sdapi/v1/txt2img",
                        json{{"prompt", "x <lora:lora_kohya>"}, {"batch_size", 1}, {"steps", 1}}.dump(),
                        "application/json");
  ASSERT_TRUE(fine);
  EXPECT_EQ(fine->status, 200) << fine->body;  // still serving, tags and all
  EXPECT_EQ(testing::body_of(http->Get("/health"))["status"], "ok");
}

}  // namespace
}  // namespace kakusan
