// The C API (include/kakusan/kakusan.h) over the C++ pipeline: exceptions become status codes and a
// per-thread error message.
#include <cmath>
#include <filesystem>
#include <optional>
#include <memory>
#include <new>
#include <string>
#include <vector>

#include "core/error.h"
#include "kakusan/kakusan.h"
#include "kakusan/pipeline.h"
#include "pipeline/generate_request.h"

struct kakusan_context {
  kakusan::StableDiffusionPipeline pipeline;
};

struct kakusan_images {
  kakusan::GenerateResult result;
};

namespace {

thread_local std::string last_error;

std::vector<std::string> strings(const char* const* items, int count, const char* what) {
  KK_CHECK(count >= 0 && (count == 0 || items != nullptr), what, ": ", count, " entries but no array");
  std::vector<std::string> out;
  for (int i = 0; i < count; ++i) {
    KK_CHECK(items[i] != nullptr, what, "[", i, "] is NULL");
    out.emplace_back(items[i]);
  }
  return out;
}

kakusan::WeightDType weight_dtype(const char* name) {
  if (name == nullptr) return kakusan::WeightDType::Auto;
  const std::string s = name;
  if (s == "fp32") return kakusan::WeightDType::F32;
  if (s == "fp16") return kakusan::WeightDType::F16;
  if (s == "bf16") return kakusan::WeightDType::BF16;
  kakusan::fail("dtype \"", s, "\" is not fp32, fp16 or bf16");
}

// Runs `body`, turning exceptions into a status and last_error.
template <typename Body>
int guarded(Body&& body) {
  try {
    body();
    last_error.clear();
    return KAKUSAN_OK;
  } catch (const kakusan::Cancelled& e) {
    last_error = e.what();
    return KAKUSAN_ERROR_CANCELLED;
  } catch (const kakusan::Error& e) {
    last_error = e.what();
    return KAKUSAN_ERROR_INVALID_ARGUMENT;
  } catch (const std::bad_alloc&) {
    last_error = "out of memory";
    return KAKUSAN_ERROR_OUT_OF_MEMORY;
  } catch (const std::exception& e) {
    last_error = e.what();
    return KAKUSAN_ERROR_INTERNAL;
  } catch (...) {
    last_error = "unknown error";
    return KAKUSAN_ERROR_INTERNAL;
  }
}

}  // namespace

extern "C" {

kakusan_load_params kakusan_default_load_params(void) {
  kakusan_load_params p{};
  p.n_threads = 0;
  return p;
}

kakusan_params kakusan_default_params(void) {
  const kakusan::GenerateParams defaults;
  kakusan_params p{};
  p.height = defaults.height;
  p.width = defaults.width;
  p.num_inference_steps = defaults.num_inference_steps;
  p.guidance_scale = float(defaults.guidance_scale);
  p.guidance_rescale = float(defaults.guidance_rescale);
  p.num_images_per_prompt = defaults.num_images_per_prompt;
  p.eta = float(defaults.eta);
  p.cuda_sm_count = defaults.cuda_sm_count;
  p.cuda_max_threads_per_sm = defaults.cuda_max_threads_per_sm;
  p.clip_skip = -1;
  p.attention_slice_size = -1;
  p.strength = -1.0f;
  return p;
}

kakusan_context* kakusan_load(const char* model, const kakusan_load_params* params) {
  kakusan_context* ctx = nullptr;
  guarded([&] {
    KK_CHECK(model != nullptr, "kakusan_load: model is NULL");
    const kakusan_load_params p = params != nullptr ? *params : kakusan_default_load_params();
    kakusan::LoadOptions options;
    if (p.vae != nullptr) options.vae = std::string(p.vae);
    options.dtype = weight_dtype(p.dtype);
    if (p.variant != nullptr) options.variant = p.variant;
    if (p.scheduler != nullptr) options.scheduler = p.scheduler;
    for (const std::string& item : strings(p.scheduler_options, p.n_scheduler_options, "scheduler_options")) {
      const size_t eq = item.find('=');
      KK_CHECK(eq != std::string::npos && eq > 0, "scheduler option \"", item, "\" is not key=value");
      options.scheduler_options[item.substr(0, eq)] = item.substr(eq + 1);
    }
    KK_CHECK(p.n_threads >= 0, "n_threads must be >= 0 but is ", p.n_threads);
    options.num_threads = p.n_threads;
    if (p.device != nullptr) options.device = p.device;
    if (p.config != nullptr) options.config = std::string(p.config);
    if (p.tokenizer != nullptr) options.tokenizer = std::string(p.tokenizer);
    const std::vector<std::string> loras = strings(p.lora_files, p.n_loras, "lora_files");
    for (size_t i = 0; i < loras.size(); ++i) {
      const float scale = p.lora_scales != nullptr ? p.lora_scales[i] : 1.0f;
      KK_CHECK(std::isfinite(scale), "lora_scales[", i, "] is ", scale, ", not a finite number");
      options.loras.push_back({loras[i], scale});
    }
    if (p.lora_dir != nullptr) options.lora_dir = std::filesystem::path(p.lora_dir);
    for (const std::string& file : strings(p.embedding_files, p.n_embeddings, "embedding_files")) {
      const size_t i = options.embeddings.size();
      std::optional<std::string> token;
      if (p.embedding_tokens != nullptr && p.embedding_tokens[i] != nullptr) token = p.embedding_tokens[i];
      options.embeddings.push_back({file, token});
    }
    if (p.offload != nullptr) options.offload = kakusan::offload_from_name(p.offload);
    ctx = new kakusan_context{kakusan::StableDiffusionPipeline::load(model, options)};
  });
  return ctx;
}

void kakusan_free(kakusan_context* ctx) { delete ctx; }

int kakusan_generate(kakusan_context* ctx, const kakusan_params* params, kakusan_images** out) {
  return guarded([&] {
    KK_CHECK(ctx != nullptr && params != nullptr && out != nullptr, "kakusan_generate: NULL argument");
    *out = nullptr;
    const kakusan_params& p = *params;
    kakusan::GenerateRequest r;
    r.prompts = strings(p.prompts, p.n_prompts, "prompts");
    r.negative_prompts = strings(p.negative_prompts, p.n_negative_prompts, "negative_prompts");
    r.height = p.height;
    r.width = p.width;
    r.num_inference_steps = p.num_inference_steps;
    r.guidance_scale = p.guidance_scale;
    r.guidance_rescale = p.guidance_rescale;
    r.num_images_per_prompt = p.num_images_per_prompt;
    r.eta = p.eta;
    KK_CHECK(p.n_seeds >= 0 && (p.n_seeds == 0 || p.seeds != nullptr), "seeds: ", p.n_seeds, " entries but no array");
    r.seeds.assign(p.seeds, p.seeds + p.n_seeds);
    if (p.clip_skip >= 0) r.clip_skip = p.clip_skip;
    if (p.attention_slice_size >= 0) {
      r.attention.mode = kakusan::AttentionOptions::Mode::Sliced;
      r.attention.slice_size = p.attention_slice_size;
    }
    r.vae_slicing = p.vae_slicing != 0;
    r.vae_tiling = p.vae_tiling != 0;
    r.vae_tile_size = p.vae_tile_size;
    r.stream_unet_weights = p.stream_unet_weights != 0;
    r.low_memory = p.low_memory != 0;
    if (p.generator_device != nullptr) r.generator_device = p.generator_device;
    r.cuda_sm_count = p.cuda_sm_count;
    r.cuda_max_threads_per_sm = p.cuda_max_threads_per_sm;
    if (p.image != nullptr) r.image_paths = {p.image};
    if (p.mask_image != nullptr) r.mask_paths = {p.mask_image};
    if (p.strength >= 0.0f || std::isnan(p.strength)) r.strength = double(p.strength);
    kakusan::GenerateParams g = kakusan::generate_params(r);
    g.cuda_graphs = p.disable_cuda_graphs == 0;
    if (p.callback != nullptr) {
      g.callback_on_step_end = [&p](const kakusan::StepInfo& step) {
        return p.callback(step.step, step.num_steps, step.timestep, p.callback_user_data) != 0;
      };
    }
    auto images = std::make_unique<kakusan_images>();
    images->result = ctx->pipeline.generate(g);
    *out = images.release();
  });
}

int kakusan_images_count(const kakusan_images* images) {
  return images == nullptr ? 0 : int(images->result.images.size());
}

const uint8_t* kakusan_images_rgb(const kakusan_images* images, int i, int* width, int* height) {
  if (images == nullptr || i < 0 || i >= kakusan_images_count(images)) return nullptr;
  const kakusan::Image& image = images->result.images[size_t(i)];
  if (width != nullptr) *width = image.width;
  if (height != nullptr) *height = image.height;
  return image.rgb.data();
}

uint64_t kakusan_images_seed(const kakusan_images* images, int i) {
  if (images == nullptr || i < 0 || size_t(i) >= images->result.seeds.size()) return 0;
  return images->result.seeds[size_t(i)];
}

void kakusan_images_free(kakusan_images* images) { delete images; }

const char* kakusan_last_error(void) { return last_error.c_str(); }

const char* kakusan_status_string(int status) {
  switch (status) {
    case KAKUSAN_OK: return "ok";
    case KAKUSAN_ERROR_INVALID_ARGUMENT: return "invalid argument";
    case KAKUSAN_ERROR_CANCELLED: return "cancelled";
    case KAKUSAN_ERROR_OUT_OF_MEMORY: return "out of memory";
    case KAKUSAN_ERROR_INTERNAL: return "internal error";
  }
  return "unknown status";
}

}  // extern "C"
