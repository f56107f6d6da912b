// Where `kakusan generate` writes its files (the `parameters` text itself is io/png.h's format_parameters).
//
// Naming: --output out.png writes image 0 to out.png and image i > 0 to out-<i>.png (out-1.png, out-2.png,
// ...); the grid goes to out-grid.png. Without an extension, ".png" is added.
#pragma once

#include <cstddef>
#include <filesystem>
#include <string>

#include "io/png.h"
#include "kakusan/pipeline.h"

namespace kakusan {

std::filesystem::path image_output_path(const std::filesystem::path& output, int index);
std::filesystem::path grid_output_path(const std::filesystem::path& output);

struct GridSpec {
  int rows = 0, cols = 0;
};
// "ROWSxCOLS" ("2x2", "1x4"); throws Error on anything else.
GridSpec parse_grid_spec(const std::string& text);

// The model's name for the PNG metadata: the folder's name, or the hub id as given.
std::string model_display_name(const std::string& model);

// The A1111 `parameters` text chunk of image `i` of a run (the CLI's files and the server's responses carry
// the same text). `sampler` is the scheduler's class name, `model` the display name; `dtype` fp16 or bf16 is
// said ("Dtype: bf16"), fp32 and Auto are not (fp32 is the default).
PngText image_parameters(const GenerateParams& params, const GenerateResult& result, size_t i,
                         const std::string& sampler, const std::string& model, WeightDType dtype = WeightDType::Auto);

}  // namespace kakusan
