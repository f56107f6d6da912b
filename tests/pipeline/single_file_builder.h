// Rebuilds, from a diffusers folder of the golden kit, the single file diffusers' conversion script makes of
// it: tests/golden/formats/single_file_<model>.json lists each file tensor, the folder tensor(s) it holds
// (several: OpenCLIP's fused attention projection, rows concatenated) and its stored shape.
#pragma once

#include <filesystem>
#include <string>

namespace kakusan::testing {

// The name map's path for a kit model ("tiny-sd").
std::filesystem::path single_file_map(const std::string& model);

// Writes <out> (fp32 safetensors) from <kit>/<model> with the map. Tensors the map gives no source (SD 2.x's
// text_projection, which diffusers leaves unused) are zeros.
void build_single_file(const std::string& model, const std::filesystem::path& out);

}  // namespace kakusan::testing
