#include <gtest/gtest.h>

#include "core/error.h"
#include "pipeline/output_files.h"

namespace kakusan {
namespace {

TEST(OutputFiles, ImageNamesFollowTheDocumentedPattern) {
  EXPECT_EQ(image_output_path("out.png", 0), "out.png");
  EXPECT_EQ(image_output_path("out.png", 1), "out-1.png");
  EXPECT_EQ(image_output_path("dir/a.b/out.png", 12), "dir/a.b/out-12.png");
  EXPECT_EQ(image_output_path("out", 0), "out.png");
  EXPECT_EQ(image_output_path("out", 3), "out-3.png");
  EXPECT_EQ(grid_output_path("results/out.png"), "results/out-grid.png");
}

TEST(OutputFiles, ParsesGridSpecs) {
  GridSpec g = parse_grid_spec("2x3");
  EXPECT_EQ(g.rows, 2);
  EXPECT_EQ(g.cols, 3);
  g = parse_grid_spec("1X4");
  EXPECT_EQ(g.rows, 1);
  EXPECT_EQ(g.cols, 4);
  for (const char* bad : {"", "2", "x2", "2x", "0x2", "2x-1", "2x2x2", "ax2", "2 x 2", "99999x1"})
    EXPECT_THROW(parse_grid_spec(bad), Error) << bad;
}

// The PNG parameters say fp16 and bf16 (the server's infotexts and the CLI's files share this text); fp32,
// the default, is left unsaid so that fp32 files stay as they were.
TEST(OutputFiles, ParametersSayANarrowDtype) {
  GenerateParams params;
  params.prompt = {"a cat"};
  GenerateResult result;
  result.seeds = {7};
  result.image_shape = {1, 64, 64, 3};
  auto text = [&](WeightDType dtype) {
    return image_parameters(params, result, 0, "PNDMScheduler", "m", dtype)[0].second;
  };
  EXPECT_NE(text(WeightDType::BF16).find(", Dtype: bf16"), std::string::npos) << text(WeightDType::BF16);
  EXPECT_NE(text(WeightDType::F16).find(", Dtype: fp16"), std::string::npos);
  EXPECT_EQ(text(WeightDType::F32).find("Dtype"), std::string::npos);
  EXPECT_EQ(text(WeightDType::Auto), text(WeightDType::F32));
}

}  // namespace
}  // namespace kakusan
