// The server's requests, parsed from untrusted JSON bodies: A1111's /sdapi/v1/txt2img and img2img and OpenAI's
// /v1/images/generations each become one ImageJob, whose GenerateRequest goes through the same
// generate_params() as the CLI and the C API. Every field is type- and range-checked here; a bad body throws
// BadRequest with a one-line message naming the field (the server answers 400 with it).
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "core/error.h"
#include "pipeline/generate_request.h"

namespace kakusan::server {

class BadRequest : public Error {
 public:
  using Error::Error;
};

// Per-request limits (`kakusan serve --max-pixels/--max-steps/--max-batch`).
struct RequestLimits {
  int64_t max_pixels = 1024 * 1024;  // width * height of one image
  int max_steps = 150;
  int max_batch = 8;                 // images per request (batch_size * n_iter, or n)
  int max_prompt_bytes = 16 * 1024;  // each of prompt and negative prompt
};

struct ImageJob {
  GenerateRequest request;
  // The scheduler spec to run with (an A1111 sampler name); empty = the server's default scheduler.
  std::string sampler;
  // What the server ignored or changed (e.g. override_settings), returned to the client.
  std::vector<std::string> notes;
  bool random_seed = false;  // the client asked for a random seed (the server picks one, then fills seeds)
  uint64_t seed = 0;         // the first seed; image i uses seed + i (A1111's numbering)
  int num_images = 1;
};

// POST /sdapi/v1/txt2img. Width/height 0 (absent) mean the model's default size.
ImageJob parse_txt2img(std::string_view body, const RequestLimits& limits);

// POST /sdapi/v1/img2img: the txt2img fields plus init_images (base64 PNGs, a data: URL prefix allowed),
// mask (inpainting), denoising_strength (0.75), inpainting_mask_invert (0/1); resize_mode other than 0 is
// refused; A1111's other img2img fields (mask_blur, inpainting_fill, inpaint_full_res, ...) are ignored with
// a note. The pictures are decoded here (decode_image: read_image's checks and conversion).
ImageJob parse_img2img(std::string_view body, const RequestLimits& limits);

// POST /v1/images/generations (response_format must be b64_json: the server keeps no files).
ImageJob parse_openai_generation(std::string_view body, const RequestLimits& limits);

// Fills the job's per-image seeds (seed, seed + 1, ...) and checks the request (generate_params); BadRequest
// naming the parameter if it fails. `default_width/height` replace a size of 0 for the pixel limit.
GenerateParams job_params(ImageJob& job, uint64_t random_seed, int default_width, int default_height,
                          const RequestLimits& limits);

}  // namespace kakusan::server
