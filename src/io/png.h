// PNG files: writing generated images (atomically, with the generation parameters as a text chunk) and
// reading them back (tests, comparisons with the kit's PNGs).
#pragma once

#include <cstdint>
#include <filesystem>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "kakusan/image.h"

namespace kakusan {

// What produced an image, for the "parameters" text chunk that AUTOMATIC1111's web UI and
// stable-diffusion.cpp write (and image viewers / PNG-info tools read).
struct GenerationInfo {
  std::string prompt;
  std::string negative_prompt;  // the line is left out when empty
  int steps = 0;
  std::string sampler;          // e.g. "DPMSolverMultistepScheduler"
  double cfg_scale = 0;
  uint64_t seed = 0;
  int width = 0, height = 0;
  std::string model;
  std::vector<std::pair<std::string, std::string>> extra;  // appended as ", Key: value"
};

// "<prompt>\nNegative prompt: <neg>\nSteps: 20, Sampler: X, CFG scale: 7.5, Seed: 1, Size: 512x512, Model: M"
std::string format_parameters(const GenerationInfo& info);

using PngText = std::vector<std::pair<std::string, std::string>>;  // keyword -> UTF-8 text, in file order

// Writes an 8-bit RGB PNG through a temporary file renamed into place: on any error the target is left
// untouched and no temporary remains. Text that is plain ASCII goes into tEXt chunks, anything else into
// iTXt (UTF-8), as PIL does. Keywords must be 1-79 printable Latin-1 characters. Throws Error.
void write_png(const std::filesystem::path& path, const Image& image, const PngText& text = {});

// The same PNG as write_png writes, as bytes in memory (the server's responses). Throws Error.
std::string encode_png(const Image& image, const PngText& text = {});

struct PngContents {
  Image image;  // converted to 8-bit RGB (palette, grey, 16-bit and alpha are expanded / stripped)
  PngText text;
};
// Throws Error naming the file if it cannot be read, is not a valid PNG or is wider or taller than
// `max_side` (checked before the pixels are decompressed).
PngContents read_png(const std::filesystem::path& path, uint32_t max_side = 1u << 16);
// The same from PNG bytes in memory (e.g. a request body); errors name `label` instead of a file.
PngContents decode_png(std::string_view bytes, const std::string& label, uint32_t max_side = 1u << 16);

}  // namespace kakusan
