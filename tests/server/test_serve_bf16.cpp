// `kakusan serve --dtype bf16`: the served image and its parameters text are those of `kakusan generate
// --dtype bf16` (so the server runs bf16 products exactly as the CLI does), and the text says "Dtype: bf16".
#include <gtest/gtest.h>

#include "serve_fixture.h"
#include "support/golden.h"

namespace kakusan {
namespace {

using namespace std::chrono_literals;
using nlohmann::json;

TEST(ServeBf16, Txt2ImgEqualsKakusanGenerateInBf16) {
  KK_REQUIRE_GOLDEN();
  const std::string model = (*testing::golden_dir() / "tiny-sd").string();
  testing::ServeProcess server(model, {"--dtype", "bf16"});
  ASSERT_TRUE(server.ready());
  auto r = server.client()->Post("/sdapi/v1/txt2img",
                                 R"({"prompt":"a red cube","steps":5,"width":64,"height":64,"seed":7,"cfg_scale":6.5,
                                     "sampler_name":"Euler a"})",
                                 "application/json");
  ASSERT_TRUE(r);
  ASSERT_EQ(r->status, 200) << r->body;
  const json body = json::parse(r->body);
  const PngContents served = testing::png_of_base64(body["images"][0]);
  ASSERT_EQ(served.text.size(), 1u);
  EXPECT_NE(served.text[0].second.find(", Dtype: bf16"), std::string::npos) << served.text[0].second;

  const auto out = server.dir() / "cli.png";
  std::filesystem::create_directories(server.dir() / "cli");
  testing::ChildProcess cli(KAKUSAN_CLI_PATH,
                            {"generate", "--model", model, "--prompt", "a red cube", "--prompt-syntax", "a1111",
                             "--steps", "5", "--guidance", "6.5", "--width", "64", "--height", "64", "--seed", "7",
                             "--scheduler", "Euler a", "--dtype", "bf16", "--quiet", "--output", out.string()},
                            server.dir() / "cli");
  ASSERT_EQ(cli.wait(120s, 10ms).status, 0) << cli.stderr_text();
  const PngContents generated = read_png(out);
  EXPECT_TRUE(served.image.rgb == generated.image.rgb) << "the served bf16 image differs from kakusan generate's";
  EXPECT_EQ(served.text, generated.text);
}

}  // namespace
}  // namespace kakusan
