// Single-file checkpoints (issue 17): the kit's tiny models converted by diffusers' own conversion script
// (tests/golden/formats/make_goldens.py) give, through StableDiffusionPipeline::load(FILE, config=FOLDER),
// the folder's images exactly (bit for bit against kakusan's folder load, and within the kit's tolerances
// against diffusers' goldens) -- the SD 1.x layout and the SD 2.x one with its OpenCLIP text encoder.
#include <gtest/gtest.h>

#include "../io/scratch_dir.h"
#include "core/error.h"
#include "kakusan/pipeline.h"
#include "pipeline_cases.h"
#include "single_file_builder.h"

namespace kakusan {
namespace {

using testing::PipelineCase;

PipelineCase kit_case(const std::string& name) {
  for (const PipelineCase& c : testing::load_pipeline_cases())
    if (c.name == name) return c;
  throw Error("no pipeline case " + name);
}

void expect_single_file_matches_folder(const std::string& model, const std::string& case_name) {
  SCOPED_TRACE(model);
  const PipelineCase c = kit_case(case_name);
  testing::ScratchDir dir;
  const std::filesystem::path file = dir / (model + ".safetensors");
  testing::build_single_file(model, file);

  LoadOptions load = c.load;
  const GenerateResult from_folder = StableDiffusionPipeline::load(c.model, load).generate(c.params);
  load.config = c.model.string();
  StableDiffusionPipeline pipe = StableDiffusionPipeline::load(file, load);
  EXPECT_EQ(pipe.model_path(), file);
  const GenerateResult from_file = pipe.generate(c.params);

  EXPECT_EQ(from_file.latents, from_folder.latents) << "latents differ from the folder's";
  EXPECT_EQ(from_file.image_tensor, from_folder.image_tensor) << "images differ from the folder's";
  const SafetensorsFile want = SafetensorsFile::open(c.file);
  const Shape image_shape(from_file.image_shape.begin(), from_file.image_shape.end());
  KK_EXPECT_CLOSE(TensorView(const_cast<float*>(from_file.image_tensor.data()), image_shape), want.view("image"),
                  c.image_tolerance, case_name + " image");
}

TEST(SingleFile, Sd1LayoutGivesTheFolderImages) {
  KK_REQUIRE_GOLDEN();
  expect_single_file_matches_folder("tiny-sd", "b_dpm20");
}

TEST(SingleFile, Sd2OpenClipLayoutGivesTheFolderImages) {
  KK_REQUIRE_GOLDEN();
  expect_single_file_matches_folder("tiny-sd-v", "k_sdv_ddim20");
}

}  // namespace
}  // namespace kakusan
