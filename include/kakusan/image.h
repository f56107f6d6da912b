// An 8-bit RGB image, as the pipeline returns it and PNG files store it.
#pragma once

#include <cstdint>
#include <filesystem>
#include <string>
#include <string_view>
#include <vector>

namespace kakusan {

struct Image {
  int width = 0, height = 0;
  std::vector<uint8_t> rgb;  // row-major, 3 bytes per pixel
};

// Reads an input picture for image-to-image or inpainting: a PNG (grey, RGB or palette, 8 or 16 bits; alpha
// dropped as PIL's convert("RGB") does, 16-bit samples cut to their high byte). Throws kakusan::Error naming
// the file when it cannot be read, is not a PNG, or is larger than kMaxImageSide on a side.
Image read_image(const std::filesystem::path& path);

// The same from the bytes of a PNG in memory (e.g. a server request); errors name `label`.
Image decode_image(std::string_view png, const std::string& label);

}  // namespace kakusan
