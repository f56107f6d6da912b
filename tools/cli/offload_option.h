// The --offload option of generate, bench and serve: one help text for the three.
#pragma once

namespace kakusan::cli {

inline constexpr const char* kOffloadHelp =
    "where the weights wait between uses on a GPU: none (all on the GPU from load on), model (in host memory, "
    "each component uploaded for its phase: diffusers' enable_model_cpu_offload), sequential (as model, the UNet "
    "uploaded block by block); same images, less GPU memory, uploads every run. On the CPU the weights already "
    "are host memory: model is what it always does, sequential streams the UNet's weights (as --low-memory)";

}  // namespace kakusan::cli
