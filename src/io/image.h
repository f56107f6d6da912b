// 8-bit images from the pipeline's float output, and diffusers' make_image_grid.
#pragma once

#include <cstdint>
#include <vector>

#include "core/tensor.h"
#include "kakusan/image.h"

namespace kakusan {

// One channel value as diffusers' numpy_to_pil computes it: round(x * 255) in float32, rounding halves to
// even like numpy; x is clamped to [0, 1] first (the pipeline has already clamped; NaN becomes 0).
uint8_t to_u8(float x);

// Images from an NHWC float32 tensor with 3 channels in [0, 1] (output_type="np"). Throws Error on another
// shape or dtype.
std::vector<Image> images_from_nhwc(const TensorView& nhwc);

// diffusers.utils.make_image_grid: `rows` x `cols` cells, image i at row i / cols, column i % cols. All images
// must have the same size and there must be exactly rows * cols of them.
Image make_image_grid(const std::vector<Image>& images, int rows, int cols);

}  // namespace kakusan
