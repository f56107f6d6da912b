// The golden kit's tolerances for the model components, read from its manifest.json (the same for every case
// of a component), shared by every test that compares a component with diffusers, on whichever backend.
#pragma once

#include "support/golden.h"
#include "support/golden_manifest.h"

namespace kakusan::testing {

inline const Tolerance kTextEncoderTolerance = golden_tolerance("text_encoder_tiny-sd");
inline const Tolerance kUNetTolerance = golden_tolerance("unet_tiny-sd");
inline const Tolerance kVaeTolerance = golden_tolerance("vae_tiny-sd");

}  // namespace kakusan::testing
