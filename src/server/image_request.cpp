#include "server/image_request.h"

#include <charconv>
#include <cmath>
#include <nlohmann/json.hpp>

#include "pipeline/prepare_image.h"
#include "pipeline/prompt_attention.h"
#include "server/base64.h"
#include "server/samplers.h"

namespace kakusan::server {
namespace {

using nlohmann::json;

// A1111's API defaults (its web UI's, not the 50 steps of the bare processing class: clients send steps).
constexpr int kDefaultSteps = 20;
constexpr double kDefaultDenoisingStrength = 0.75;
constexpr double kDefaultCfgScale = 7.0;
// Nesting beyond this is no request of ours; refusing it before parsing keeps hostile bodies from costing
// stack or time in the parser.
constexpr int kMaxNesting = 16;

[[noreturn]] void bad(const std::string& message) { throw BadRequest(message); }

void check_nesting(std::string_view body) {
  int depth = 0;
  bool in_string = false, escaped = false;
  for (char c : body) {
    if (in_string) {
      if (escaped) escaped = false;
      else if (c == '\\') escaped = true;
      else if (c == '"') in_string = false;
      continue;
    }
    if (c == '"') in_string = true;
    if (c == '[' || c == '{') ++depth;
    if (c == ']' || c == '}') --depth;
    if (depth > kMaxNesting) bad(str_cat("request body nests deeper than ", kMaxNesting, " levels"));
  }
}

json parse_object(std::string_view body) {
  check_nesting(body);
  json doc = json::parse(body.begin(), body.end(), nullptr, /*allow_exceptions=*/false);
  if (doc.is_discarded()) bad("request body is not valid JSON");
  if (!doc.is_object()) bad("request body must be a JSON object");
  return doc;
}

const char* type_name(const json& v) { return v.type_name(); }

std::string get_string(const json& doc, const char* key, const std::string& fallback, size_t max_bytes) {
  auto it = doc.find(key);
  if (it == doc.end() || it->is_null()) return fallback;
  if (!it->is_string()) bad(str_cat("\"", key, "\" must be a string, not ", type_name(*it)));
  const std::string& s = it->get_ref<const std::string&>();
  if (s.size() > max_bytes) bad(str_cat("\"", key, "\" is ", s.size(), " bytes; the limit is ", max_bytes));
  return s;
}

// An integer field (a float with an integral value is accepted, as A1111's pydantic models accept it).
int64_t get_integer(const json& doc, const char* key, int64_t fallback, int64_t lo, int64_t hi) {
  auto it = doc.find(key);
  if (it == doc.end() || it->is_null()) return fallback;
  int64_t value = 0;
  if (it->is_number_integer() && !(it->is_number_unsigned() && it->get<uint64_t>() > uint64_t(INT64_MAX))) {
    value = it->get<int64_t>();
  } else if (it->is_number_float()) {
    const double d = it->get<double>();
    if (!(std::isfinite(d) && d == std::floor(d) && d >= double(lo) && d <= double(hi)))
      bad(str_cat("\"", key, "\" must be an integer in ", lo, "..", hi));
    value = int64_t(d);
  } else {
    bad(str_cat("\"", key, "\" must be an integer, not ", type_name(*it)));
  }
  if (value < lo || value > hi) bad(str_cat("\"", key, "\" is ", value, "; it must be in ", lo, "..", hi));
  return value;
}

double get_number(const json& doc, const char* key, double fallback, double lo, double hi) {
  auto it = doc.find(key);
  if (it == doc.end() || it->is_null()) return fallback;
  if (!it->is_number()) bad(str_cat("\"", key, "\" must be a number, not ", type_name(*it)));
  const double value = it->get<double>();
  if (!(std::isfinite(value) && value >= lo && value <= hi))
    bad(str_cat("\"", key, "\" must be a number in ", lo, "..", hi));
  return value;
}

// A1111's seed: -1 (or absent) picks a random one; anything else is the seed, 0 .. 2^64-1.
void read_seed(const json& doc, ImageJob& job) {
  auto it = doc.find("seed");
  job.random_seed = true;
  if (it == doc.end() || it->is_null()) return;
  if (it->is_number_unsigned()) {
    job.seed = it->get<uint64_t>();
    job.random_seed = false;
    return;
  }
  if (it->is_number_integer() && it->get<int64_t>() == -1) return;
  if (it->is_number_float() && it->get<double>() == -1.0) return;
  bad("\"seed\" must be -1 (random) or an integer in 0..18446744073709551615");
}

void check_keys(const json& doc, const std::vector<std::string>& known, ImageJob& job) {
  for (const auto& [key, value] : doc.items()) {
    bool found = false;
    for (const std::string& k : known) found = found || k == key;
    if (!found) job.notes.push_back(str_cat("\"", key.substr(0, 64), "\" is not supported and was ignored"));
  }
}

void set_images(ImageJob& job, int64_t count, const RequestLimits& limits, const char* what) {
  if (count > limits.max_batch)
    bad(str_cat(what, " asks for ", count, " images; this server allows ", limits.max_batch, " per request"));
  job.num_images = int(count);
}

// The txt2img fields, shared by /sdapi/v1/img2img (A1111's img2img request extends the txt2img one).
const std::vector<std::string> kTxt2ImgKeys = {
    "prompt", "negative_prompt", "steps", "cfg_scale", "width", "height", "seed", "batch_size", "n_iter",
    "eta", "sampler_name", "sampler_index", "override_settings", "send_images", "save_images"};

void read_txt2img_fields(const json& doc, const RequestLimits& limits, ImageJob& job) {
  GenerateRequest& r = job.request;
  r.prompts = {get_string(doc, "prompt", "", size_t(limits.max_prompt_bytes))};
  const std::string negative = get_string(doc, "negative_prompt", "", size_t(limits.max_prompt_bytes));
  if (!negative.empty()) r.negative_prompts = {negative};
  r.num_inference_steps = int(get_integer(doc, "steps", kDefaultSteps, 1, limits.max_steps));
  r.guidance_scale = get_number(doc, "cfg_scale", kDefaultCfgScale, 0.0, 100.0);
  r.width = int(get_integer(doc, "width", 0, 8, kMaxImageSide));
  r.height = int(get_integer(doc, "height", 0, 8, kMaxImageSide));
  read_seed(doc, job);
  const int64_t batch_size = get_integer(doc, "batch_size", 1, 1, limits.max_batch);
  const int64_t n_iter = get_integer(doc, "n_iter", 1, 1, limits.max_batch);
  set_images(job, batch_size * n_iter, limits, "batch_size * n_iter");
  r.eta = get_number(doc, "eta", 0.0, 0.0, 1.0);
  r.prompt_syntax = PromptSyntax::A1111;  // A1111's clients write its syntax
  // A malformed weight is the client's error: say so now, not from inside the generation.
  try {
    parse_prompt_attention(r.prompts[0]);
    parse_prompt_attention(negative);
  } catch (const Error& e) {
    bad(e.what());
  }
  std::string sampler = get_string(doc, "sampler_name", "", 64);
  if (sampler.empty()) sampler = get_string(doc, "sampler_index", "", 64);  // A1111's older field
  if (!sampler.empty()) {
    const std::optional<std::string> spec = scheduler_for_sampler(sampler);
    if (!spec) bad(str_cat("unknown sampler \"", sampler, "\" (GET /sdapi/v1/samplers lists them)"));
    job.sampler = *spec;
  }
  if (auto it = doc.find("override_settings"); it != doc.end() && !it->is_null()) {
    if (!it->is_object()) bad(str_cat("\"override_settings\" must be an object, not ", type_name(*it)));
    if (!it->empty()) job.notes.push_back("override_settings is ignored: this server's model and settings are fixed");
  }
}

// One base64 PNG from the request (a data: URL prefix is allowed, as A1111 allows it), decoded and converted
// to RGB exactly as read_image does for a file.
Image decode_request_image(const json& value, const std::string& what) {
  if (!value.is_string()) bad(str_cat(what, " must be a base64 PNG string, not ", type_name(value)));
  std::string_view text = value.get_ref<const std::string&>();
  if (text.rfind("data:", 0) == 0) {
    const size_t comma = text.find(',');
    if (comma == std::string_view::npos || text.substr(0, comma).find(";base64") == std::string_view::npos)
      bad(str_cat(what, " is a data: URL without ;base64,"));
    text.remove_prefix(comma + 1);
  }
  const std::optional<std::string> bytes = base64_decode(text);
  if (!bytes) bad(str_cat(what, " is not valid base64"));
  try {
    return decode_image(*bytes, what);
  } catch (const Error& e) {
    bad(e.what());
  }
}

// A1111's inpainting_mask_invert: repaint what the mask leaves black. The mask becomes the grey image of its
// inverted luma (PIL's convert("L"), as the pipeline computes it), which the pipeline turns back into that
// same luma, so the result is exactly ImageOps.invert(mask.convert("L")).
Image invert_mask(const Image& mask) {
  Image inverted = mask;
  for (size_t i = 0; i + 2 < inverted.rgb.size(); i += 3) {
    const uint8_t v = uint8_t(255 - luma(&mask.rgb[i]));
    inverted.rgb[i] = inverted.rgb[i + 1] = inverted.rgb[i + 2] = v;
  }
  return inverted;
}

}  // namespace

ImageJob parse_txt2img(std::string_view body, const RequestLimits& limits) {
  const json doc = parse_object(body);
  ImageJob job;
  read_txt2img_fields(doc, limits, job);
  check_keys(doc, kTxt2ImgKeys, job);
  return job;
}

ImageJob parse_img2img(std::string_view body, const RequestLimits& limits) {
  const json doc = parse_object(body);
  ImageJob job;
  read_txt2img_fields(doc, limits, job);
  GenerateRequest& r = job.request;
  auto images = doc.find("init_images");
  if (images == doc.end() || !images->is_array() || images->empty())
    bad("\"init_images\" must be a non-empty list of base64 PNGs");
  if (images->size() > size_t(limits.max_batch))
    bad(str_cat("\"init_images\" has ", images->size(), " images; this server allows ", limits.max_batch));
  for (size_t i = 0; i < images->size(); ++i)
    r.images.push_back(decode_request_image((*images)[i], str_cat("\"init_images\"[", i, "]")));
  const bool invert = get_integer(doc, "inpainting_mask_invert", 0, 0, 1) == 1;
  if (auto mask = doc.find("mask"); mask != doc.end() && !mask->is_null()) {
    Image m = decode_request_image(*mask, "\"mask\"");
    r.masks.push_back(invert ? invert_mask(m) : std::move(m));
  }
  r.strength = get_number(doc, "denoising_strength", kDefaultDenoisingStrength, 0.0, 1.0);
  // "Just resize" is what the pipeline does; A1111's crop and fill modes would need another geometry.
  if (get_integer(doc, "resize_mode", 0, 0, 3) != 0) bad("\"resize_mode\" must be 0 (just resize): crop and fill are not supported");
  std::vector<std::string> known = kTxt2ImgKeys;
  known.insert(known.end(), {"init_images", "mask", "inpainting_mask_invert", "denoising_strength", "resize_mode"});
  check_keys(doc, known, job);
  return job;
}

ImageJob parse_openai_generation(std::string_view body, const RequestLimits& limits) {
  const json doc = parse_object(body);
  ImageJob job;
  GenerateRequest& r = job.request;
  const std::string prompt = get_string(doc, "prompt", "", size_t(limits.max_prompt_bytes));
  if (prompt.empty()) bad("\"prompt\" is required");
  r.prompts = {prompt};
  r.num_inference_steps = std::min(kDefaultSteps, limits.max_steps);
  r.guidance_scale = kDefaultCfgScale;
  set_images(job, get_integer(doc, "n", 1, 1, limits.max_batch), limits, "n");
  const std::string size = get_string(doc, "size", "", 32);
  if (!size.empty()) {
    const size_t x = size.find('x');
    int w = 0, h = 0;
    const char* end = size.data() + size.size();
    const bool ok = x != std::string::npos &&
                    std::from_chars(size.data(), size.data() + x, w).ptr == size.data() + x &&
                    std::from_chars(size.data() + x + 1, end, h).ptr == end;
    if (!ok || w < 8 || h < 8 || w > kMaxImageSide || h > kMaxImageSide)
      bad(str_cat("\"size\" \"", size, "\" is not WIDTHxHEIGHT (e.g. 512x512)"));
    r.width = w;
    r.height = h;
  }
  const std::string format = get_string(doc, "response_format", "b64_json", 32);
  if (format != "b64_json") bad(str_cat("\"response_format\" \"", format, "\" is not supported; use b64_json"));
  read_seed(doc, job);  // an extension: OpenAI has no seed
  check_keys(doc, {"prompt", "n", "size", "response_format", "model", "seed", "user", "quality", "style"}, job);
  return job;
}

GenerateParams job_params(ImageJob& job, uint64_t random_seed, int default_width, int default_height,
                          const RequestLimits& limits) {
  GenerateRequest& r = job.request;
  // Without a size, image-to-image keeps its picture's (about: the pipeline rounds it down to a multiple of 8).
  if (!r.images.empty()) {
    default_width = r.images[0].width;
    default_height = r.images[0].height;
  }
  const int64_t width = r.width > 0 ? r.width : default_width;
  const int64_t height = r.height > 0 ? r.height : default_height;
  if (width * height > limits.max_pixels)
    bad(str_cat(width, "x", height, " is ", width * height, " pixels; this server allows ", limits.max_pixels));
  if (job.random_seed) job.seed = random_seed;
  r.num_images_per_prompt = job.num_images;
  // One generator for a single image (as `kakusan generate --seed S`), else A1111's seed + i per image.
  r.seeds.clear();
  for (int i = 0; i < job.num_images; ++i) r.seeds.push_back(job.seed + uint64_t(i));
  try {
    return generate_params(r);
  } catch (const Error& e) {
    throw BadRequest(e.what());
  }
}

}  // namespace kakusan::server
