// The golden kit's tolerances for the model components (its manifest.json), shared by every test that
// compares a component with diffusers, on whichever backend.
#pragma once

#include "support/golden.h"

namespace kakusan::testing {

inline constexpr Tolerance kTextEncoderTolerance{5e-5, 1e-5};  // manifest: text_encoder_* atol 5e-5, rtol 1e-5
inline constexpr Tolerance kUNetTolerance{5e-5, 1e-4};         // manifest: unet_* atol 5e-5, rtol 1e-4
inline constexpr Tolerance kVaeTolerance{1e-4, 1e-4};          // manifest: vae_* atol 1e-4, rtol 1e-4

}  // namespace kakusan::testing
