// Guidance rescaling on the host (the guided prediction itself is the backend's cfg_combine op).
#pragma once

#include "core/tensor.h"

namespace kakusan {

// diffusers' rescale_noise_cfg (Lin et al. 2023, section 3.4): per sample, scale the guided prediction to
// the standard deviation of the text-conditioned one, and mix: r * rescaled + (1 - r) * guided.
// `noise_cfg` [B, ...] is updated in place; `noise_pred_text` [B, ...].
void rescale_noise_cfg(const TensorView& noise_cfg, const TensorView& noise_pred_text, float guidance_rescale);

}  // namespace kakusan
