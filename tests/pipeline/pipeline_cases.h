// The pipeline cases of the golden kit (manifest.json, cases "pipe_*" with a file), turned into what the
// C++ API takes: model folder, load options (VAE swap, scheduler), GenerateParams (prompts, seeds, ...) and
// the kit's tolerances (support/golden_manifest.h reads the manifest). One general mechanism for every case.
#pragma once

#include <filesystem>
#include <optional>
#include <ostream>
#include <string>
#include <vector>

#include "kakusan/pipeline.h"
#include "support/golden.h"

namespace kakusan::testing {

struct PipelineCase {
  std::string id;    // "pipe_d_tutorial_batch4_seed1"
  std::string name;  // "d_tutorial_batch4_seed1" (also a valid GoogleTest name)
  std::filesystem::path file;  // golden/pipeline/<name>.safetensors
  std::filesystem::path model;
  LoadOptions load;
  GenerateParams params;
  std::vector<std::filesystem::path> pngs;
  Tolerance latents_tolerance;
  Tolerance image_tolerance;
  Tolerance text_encoder_tolerance;  // the kit's text_encoder_<model> case, for prompt_embeds
  Tolerance rng_tolerance;           // the kit's rng case, for init_noise
};

// GoogleTest prints a case by its id (test names and ctest's list), not as 744 bytes of hex.
inline void PrintTo(const PipelineCase& c, std::ostream* os) { *os << c.id; }

// diffusers' `generator` argument as the manifest writes it, e.g. "torch.Generator('cpu').manual_seed(0)",
// "[Generator().manual_seed(s) for s in [1, 1, 1, 1]]" or "[g]*4, g = Generator().manual_seed(1)", into
// params.seeds / params.generator_index. Throws on a form it does not know.
void parse_generator(const std::string& text, GenerateParams& params);

// Every pipeline case with a tensor file. Without the kit, one placeholder named "GoldenKitAbsent" that the
// test skips (KK_REQUIRE_GOLDEN) so the suite reports SKIPPED instead of running nothing.
std::vector<PipelineCase> load_pipeline_cases();

}  // namespace kakusan::testing
