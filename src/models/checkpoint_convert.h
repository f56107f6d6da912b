// `kakusan convert`: a single-file checkpoint to a diffusers folder and back, tensor for tensor (names by the
// tables of io/checkpoint_tables.h, values as stored or cast to one dtype). Outputs appear whole or not at
// all: a folder is written beside its target and renamed into place, a file through write_safetensors.
#pragma once

#include <filesystem>
#include <optional>

#include "core/dtype.h"
#include "models/single_file.h"

namespace kakusan {

// Writes the diffusers folder `out` (must not exist): model_index.json, unet/, vae/, text_encoder/ (configs
// and safetensors), scheduler/, tokenizer/ (copied from where the checkpoint's tokenizer is found). Every
// tensor the models expect must be in the file; `dtype` nullopt keeps each tensor's stored dtype.
void convert_single_file_to_folder(const SingleFileCheckpoint& checkpoint, const std::filesystem::path& out,
                                   std::optional<DType> dtype);

// Writes the single file `out` (original layout; SD 2.x text encoders -- hidden_act "gelu" -- as OpenCLIP
// with the attention projections fused) from the diffusers folder `folder`.
void convert_folder_to_single_file(const std::filesystem::path& folder, const std::filesystem::path& out,
                                   std::optional<DType> dtype);

}  // namespace kakusan
