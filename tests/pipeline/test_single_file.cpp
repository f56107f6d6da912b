// Single-file checkpoints (issue 17): the kit's tiny models converted by diffusers' own conversion script
// (tests/golden/formats/make_goldens.py) give, through StableDiffusionPipeline::load(FILE, config=FOLDER),
// the folder's images exactly (bit for bit against kakusan's folder load, and within the kit's tolerances
// against diffusers' goldens) -- the SD 1.x layout and the SD 2.x one with its OpenCLIP text encoder.
#include <gtest/gtest.h>

#include "../io/scratch_dir.h"
#include <stdlib.h>

#include <fstream>

#include "core/error.h"
#include "models/single_file.h"
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

// Without --config / --tokenizer the tokenizer is found as diffusers finds it offline: the detected type's repo
// in the Hugging Face cache (tokenizer/), then openai/clip-vit-large-patch14 for SD 1.x; otherwise the error
// says how to get one.
TEST(SingleFile, TokenizerComesFromTheHubCache) {
  KK_REQUIRE_GOLDEN();
  testing::ScratchDir dir;
  const std::filesystem::path file = dir / "sd.safetensors";
  testing::build_single_file("tiny-sd", file);
  const std::filesystem::path cache = dir / "hub";
  ASSERT_EQ(::setenv("HF_HUB_CACHE", cache.c_str(), 1), 0);
  try {
    SingleFileCheckpoint::open(file).tokenizer_dir();
    ADD_FAILURE() << "no tokenizer should be found in an empty cache";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("huggingface-cli download runwayml/stable-diffusion-v1-5"), std::string::npos)
        << e.what();
  }
  // openai/clip-vit-large-patch14 keeps vocab.json / merges.txt at its root.
  const std::filesystem::path clip = cache / "models--openai--clip-vit-large-patch14";
  std::filesystem::create_directories(clip / "refs");
  std::filesystem::create_directories(clip / "snapshots");
  const std::string commit_a(40, 'a'), commit_d(40, 'd');  // snapshots are named by commit hashes
  std::ofstream(clip / "refs/main") << commit_a;
  std::filesystem::copy(*testing::golden_dir() / "tiny-sd/tokenizer", clip / "snapshots" / commit_a);
  EXPECT_EQ(SingleFileCheckpoint::open(file).tokenizer_dir(), clip / "snapshots" / commit_a / "");
  // The type's own repo wins.
  const std::filesystem::path sd = cache / "models--runwayml--stable-diffusion-v1-5";
  std::filesystem::create_directories(sd / "refs");
  std::ofstream(sd / "refs/main") << commit_d;
  std::filesystem::create_directories(sd / "snapshots" / commit_d);
  std::filesystem::copy(*testing::golden_dir() / "tiny-sd/tokenizer", sd / "snapshots" / commit_d / "tokenizer");
  EXPECT_EQ(SingleFileCheckpoint::open(file).tokenizer_dir(), sd / "snapshots" / commit_d / "tokenizer");
  ::unsetenv("HF_HUB_CACHE");
}

}  // namespace
}  // namespace kakusan
