// diffusers' VaeImageProcessor.preprocess for PIL images, the input step of image-to-image and inpainting:
// the size rule (the image's own size rounded down to a multiple of the VAE's scale factor unless one is
// given), Pillow's Lanczos resize, then x / 255 in float32 and either 2x - 1 (images) or binarisation at 0.5
// after PIL's convert("L") (masks: the processor with do_normalize=False, do_binarize=True,
// do_convert_grayscale=True). Images arrive as RGB (PNG reading drops alpha as PIL's convert("RGB") does).
#pragma once

#include <cstdint>
#include <vector>

#include "core/tensor.h"
#include "kakusan/image.h"

namespace kakusan {

struct ImageSize {
  int height = 0, width = 0;
};

// PIL's convert("L") of an RGB pixel: ITU-R 601-2 luma in 16-bit fixed point, rounded.
uint8_t luma(const uint8_t* rgb);

// get_default_height_width: `height` / `width` when non-zero, else the image's; rounded down to a multiple
// of vae_scale_factor. Throws Error when that leaves nothing (an image smaller than the factor).
ImageSize processed_size(const Image& image, int height, int width, int vae_scale_factor);

// [n, 3, H, W] in [-1, 1], one entry per image, each resized to `size`.
Tensor preprocess_images(const std::vector<Image>& images, ImageSize size);

// [n, 1, H, W] of 0 / 1 (1 = repaint), one entry per mask, each resized to `size` (as RGB, then luma).
Tensor preprocess_masks(const std::vector<Image>& masks, ImageSize size);

}  // namespace kakusan
