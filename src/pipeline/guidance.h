// Classifier-free guidance on the UNet output of a batch ordered [uncond..., cond...].
#pragma once

#include "core/tensor.h"

namespace kakusan {

// noise_pred [2B, ...] -> [B, ...]: uncond + scale * (cond - uncond), in float32 as diffusers computes it.
Tensor classifier_free_guidance(const TensorView& noise_pred, float guidance_scale);

// diffusers' rescale_noise_cfg (Lin et al. 2023, section 3.4): per sample, scale the guided prediction to
// the standard deviation of the text-conditioned one, and mix: r * rescaled + (1 - r) * guided.
// `noise_cfg` [B, ...] is updated in place; `noise_pred_text` [B, ...].
void rescale_noise_cfg(const TensorView& noise_cfg, const TensorView& noise_pred_text, float guidance_rescale);

}  // namespace kakusan
