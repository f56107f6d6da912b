// An 8-bit RGB image, as the pipeline returns it and PNG files store it.
#pragma once

#include <cstdint>
#include <vector>

namespace kakusan {

struct Image {
  int width = 0, height = 0;
  std::vector<uint8_t> rgb;  // row-major, 3 bytes per pixel
};

}  // namespace kakusan
