// From the VAE's output to images: diffusers' VaeImageProcessor.postprocess (denormalize, NCHW -> NHWC).
// The 8-bit step (numpy_to_pil) is io/image.h's images_from_nhwc.
#pragma once

#include "core/tensor.h"

namespace kakusan {

// decoded [B, 3, H, W] in [-1, 1] -> [B, H, W, 3]: (x / 2 + 0.5) clamped to [0, 1].
Tensor denormalize_to_nhwc(const TensorView& decoded);

}  // namespace kakusan
