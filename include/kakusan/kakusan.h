/* kakusan: Stable Diffusion text-to-image — the C API, for other languages (ctypes, cgo, FFI, ...).
 *
 *   #include <kakusan/kakusan.h>
 *
 *   struct kakusan_load_params lp = kakusan_default_load_params();
 *   lp.scheduler = "DPMSolverMultistepScheduler";
 *   kakusan_context * ctx = kakusan_load("path/to/stable-diffusion-v1-5", &lp);
 *   if (!ctx) { fprintf(stderr, "%s\n", kakusan_last_error()); return 1; }
 *
 *   const char * prompts[] = { "portrait photo of a old warrior chief" };
 *   uint64_t seeds[] = { 1 };
 *   struct kakusan_params p = kakusan_default_params();
 *   p.prompts = prompts;  p.n_prompts = 1;
 *   p.seeds = seeds;      p.n_seeds = 1;
 *   p.num_inference_steps = 20;
 *
 *   kakusan_images * out = NULL;
 *   if (kakusan_generate(ctx, &p, &out) != KAKUSAN_OK) { fprintf(stderr, "%s\n", kakusan_last_error()); }
 *   for (int i = 0; i < kakusan_images_count(out); ++i) {
 *     int w, h;
 *     const uint8_t * rgb = kakusan_images_rgb(out, i, &w, &h);  // w*h*3 bytes, row-major RGB
 *   }
 *   kakusan_images_free(out);
 *   kakusan_free(ctx);
 *
 * Parameters keep diffusers' names and defaults (see kakusan/pipeline.h for their meaning). A context is
 * loaded once and generates many times; use one context from one thread at a time. Every function that can
 * fail returns NULL or a status != KAKUSAN_OK and leaves a message for kakusan_last_error() (per thread).
 */
#ifndef KAKUSAN_H
#define KAKUSAN_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct kakusan_context kakusan_context; /* a loaded pipeline */
typedef struct kakusan_images kakusan_images;   /* the result of one kakusan_generate call */

enum kakusan_status {
  KAKUSAN_OK = 0,
  KAKUSAN_ERROR_INVALID_ARGUMENT = 1, /* a bad parameter, model folder, file or scheduler */
  KAKUSAN_ERROR_CANCELLED = 2,        /* the step callback returned 0 */
  KAKUSAN_ERROR_OUT_OF_MEMORY = 3,
  KAKUSAN_ERROR_INTERNAL = 4,
};

/* Called after each denoising step; return 0 to cancel the run. */
typedef int (*kakusan_step_callback)(int step, int num_steps, double timestep, void * user_data);

struct kakusan_load_params {
  const char * vae;       /* NULL = the model's VAE; else a VAE folder or model id */
  const char * dtype;     /* "fp32", "fp16", "bf16", or NULL = as stored */
  const char * variant;   /* weight file variant ("fp16"), NULL = default files */
  const char * scheduler; /* class name or alias, NULL = the model's scheduler */
  const char * const * scheduler_options; /* "key=value" strings */
  int n_scheduler_options;
  int n_threads;          /* 0 = all cores */
  const char * device;    /* "cpu", "reference", "cuda[:N]" where built in; NULL = "cpu" */
  /* Fields are only ever appended (start from kakusan_default_load_params() and set what you need). */
  /* Single-file checkpoints (the model given as a .safetensors file, from_single_file): */
  const char * config;    /* a diffusers folder or model id whose configs to use; NULL = built in, by detected type */
  const char * tokenizer; /* a tokenizer folder; NULL = found offline as diffusers would */
  /* LoRAs fused into the UNet and text encoder (load_lora_weights + fuse_lora; several add up): */
  const char * const * lora_files;
  const float * lora_scales;      /* n_loras scales, or NULL = 1.0 each */
  int n_loras;
  const char * lora_dir;          /* prompt tags <lora:NAME:WEIGHT> name NAME.safetensors here; NULL = no tags */
  /* Textual-inversion embeddings (load_textual_inversion(file, token=token)): */
  const char * const * embedding_files;
  const char * const * embedding_tokens; /* n_embeddings tokens (NULL entries allowed), or NULL = each file's own */
  int n_embeddings;
  /* Where the weights wait between uses on a GPU (diffusers' offload levers): NULL or "none" (all on the GPU),
     "model" (only the running component: enable_model_cpu_offload), "sequential" (the UNet block by block). */
  const char * offload;
};

struct kakusan_params {
  const char * const * prompts;          /* the batch */
  int n_prompts;
  const char * const * negative_prompts; /* 0, 1 (for all) or n_prompts entries */
  int n_negative_prompts;
  int height;                            /* 0 = the model's default */
  int width;
  int num_inference_steps;               /* 50 */
  float guidance_scale;                  /* 7.5 */
  float guidance_rescale;                /* 0 */
  int num_images_per_prompt;             /* 1 */
  float eta;                             /* 0 */
  const uint64_t * seeds;                /* 0 seeds: random; 1: one shared generator; one per image */
  int n_seeds;
  const char * generator_device;         /* NULL or "cpu": torch.Generator("cpu"); "cuda": torch.Generator("cuda") */
  int cuda_sm_count;                     /* "cuda": the GPU's multiprocessor count for large draws (40, a T4) */
  int cuda_max_threads_per_sm;           /* "cuda": its max threads per multiprocessor (1024, a T4) */
  int clip_skip;                         /* -1 = none */
  int attention_slice_size;              /* -1 = off, 0 = auto, N = slices of N */
  int vae_slicing;                       /* 1 = decode one image at a time */
  int vae_tiling;                        /* 1 = decode large images as overlapping tiles */
  int vae_tile_size;                     /* tile side in pixels for vae_tiling; 0 = the VAE's sample_size */
  int stream_unet_weights;               /* 1 = UNet weights read block by block from the model file */
  kakusan_step_callback callback;        /* NULL = none */
  void * callback_user_data;
  int low_memory;                        /* 1 = least memory, as the CLI's --low-memory: streamed UNet weights
                                            and VAE tiling in 256-pixel tiles (unless vae_tile_size is set) */
  const char * image;                    /* NULL = text-to-image; else an input PNG: image-to-image */
  const char * mask_image;               /* with image: a mask PNG (white = repaint), inpainting; NULL = none */
  float strength;                        /* with image, in [0, 1]; < 0 (default) = 0.8 img2img, 1.0 inpainting */
  int disable_cuda_graphs;               /* 1 = on a GPU, launch every UNet step's kernels instead of replaying the
                                            step as a CUDA graph (the CLI's --no-cuda-graphs); same images */
};

struct kakusan_load_params kakusan_default_load_params(void);
struct kakusan_params kakusan_default_params(void);

/* Loads a diffusers model folder, a model id (offline Hugging Face cache) or a single-file checkpoint
 * (.safetensors in the original layout; see config / tokenizer). NULL on error. */
kakusan_context * kakusan_load(const char * model, const struct kakusan_load_params * params);
void kakusan_free(kakusan_context * ctx);

/* Runs the pipeline; on success *out receives the images (free with kakusan_images_free). */
int kakusan_generate(kakusan_context * ctx, const struct kakusan_params * params, kakusan_images ** out);

int kakusan_images_count(const kakusan_images * images);
/* Image i as RGB8 (width * height * 3 bytes); NULL if i is out of range. */
const uint8_t * kakusan_images_rgb(const kakusan_images * images, int i, int * width, int * height);
/* The seed of image i's generator. */
uint64_t kakusan_images_seed(const kakusan_images * images, int i);
void kakusan_images_free(kakusan_images * images);

/* The message of the last failed call on this thread ("" if none). */
const char * kakusan_last_error(void);
/* A short name for a status ("invalid argument"). */
const char * kakusan_status_string(int status);

#ifdef __cplusplus
}
#endif

#endif /* KAKUSAN_H */
