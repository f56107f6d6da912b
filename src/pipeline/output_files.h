// Where `kakusan generate` writes its files (the `parameters` text itself is io/png.h's format_parameters).
//
// Naming: --output out.png writes image 0 to out.png and image i > 0 to out-<i>.png (out-1.png, out-2.png,
// ...); the grid goes to out-grid.png. Without an extension, ".png" is added.
#pragma once

#include <filesystem>
#include <string>

namespace kakusan {

std::filesystem::path image_output_path(const std::filesystem::path& output, int index);
std::filesystem::path grid_output_path(const std::filesystem::path& output);

struct GridSpec {
  int rows = 0, cols = 0;
};
// "ROWSxCOLS" ("2x2", "1x4"); throws Error on anything else.
GridSpec parse_grid_spec(const std::string& text);

}  // namespace kakusan
