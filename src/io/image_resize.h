// Resizing 8-bit images exactly as Pillow's Image.resize(size, Image.LANCZOS) does (diffusers'
// VaeImageProcessor resizes PIL input with it): a separable Lanczos-3 filter widened by the downscale factor,
// coefficients in fixed point, a horizontal pass rounded to 8 bits, then a vertical pass.
#pragma once

#include "kakusan/image.h"

namespace kakusan {

// `image` resized to width x height (both >= 1); the same size returns a copy.
Image resize_lanczos(const Image& image, int width, int height);

}  // namespace kakusan
