// What a .safetensors file is, from its header alone (`kakusan inspect FILE`): a Stable Diffusion single-file
// checkpoint (SD 1.x / 2.x, the prediction type diffusers would use, EMA copies), a LoRA (format, components,
// layers, rank), a textual-inversion embedding (token, vectors), or none of these.
#pragma once

#include <filesystem>
#include <string>

namespace kakusan {

// One or two lines, no trailing newline. Reads only the header (and LoRA alphas). Throws Error for a file that
// is not valid safetensors (or a pickle, with how to convert it).
std::string describe_checkpoint_file(const std::filesystem::path& file);

}  // namespace kakusan
