#include "models/single_file.h"

#include <fstream>

#include "core/error.h"
#include "io/checkpoint_tables.h"
#include "io/model_folder.h"
#include "io/weight_rename.h"
#include "io/weight_split.h"
#include "models/clip_text_config.h"
#include "models/random_model.h"

namespace kakusan {

namespace {

// diffusers' CHECKPOINT_KEY_NAMES for the types it tells apart.
constexpr const char* kConvIn = "model.diffusion_model.input_blocks.0.0.weight";
constexpr const char* kCrossAttentionKey =
    "model.diffusion_model.input_blocks.2.1.transformer_blocks.0.attn2.to_k.weight";
constexpr const char* kOpenClipKey = "cond_stage_model.model.token_embedding.weight";
constexpr const char* kSdxlKey = "conditioner.embedders.1.model.transformer.resblocks.9.mlp.c_proj.bias";

// The built-in name make-random-model uses for the configs of a type's default repo.
const char* builtin_config_name(const std::string& model_type) { return model_type == "v2" ? "sd21" : "sd15"; }

std::shared_ptr<const WeightSource> renamed(std::shared_ptr<const WeightSource> base, const ComponentLayout& layout) {
  return std::make_shared<RenamedSource>(std::move(base), expand(layout), RenamedSource::Unmatched::Drop);
}

// OpenCLIP fuses the attention's query, key and value projections: rows [0, C), [C, 2C), [2C, 3C).
std::shared_ptr<const WeightSource> open_clip_text_encoder(std::shared_ptr<const WeightSource> file,
                                                           const JsonConfig& config) {
  const ClipTextConfig parsed = ClipTextConfig::parse(config);  // checked ranges
  const int layers = parsed.num_hidden_layers;
  const int64_t hidden = parsed.hidden_size;
  auto source = renamed(std::move(file), ldm_open_clip_layout(layers));
  std::vector<WeightSplit> splits;
  for (int i = 0; i < layers; ++i) {
    const std::string layer = str_cat("text_model.encoder.layers.", i, ".self_attn.");
    for (const char* kind : {"weight", "bias"})
      splits.push_back(WeightSplit::even(str_cat(layer, "in_proj_", kind),
                                         {str_cat(layer, "q_proj.", kind), str_cat(layer, "k_proj.", kind),
                                          str_cat(layer, "v_proj.", kind)},
                                         hidden));
  }
  return std::make_shared<SplitSource>(std::move(source), std::move(splits));
}

}  // namespace

CheckpointType detect_checkpoint_type(const WeightSource& file) {
  const std::string what = file.describe();
  KK_CHECK(!file.get(kSdxlKey), what, ": an SDXL checkpoint (kakusan runs Stable Diffusion 1.x and 2.x)");
  const std::optional<WeightRef> conv_in = file.get(kConvIn);
  KK_CHECK(conv_in, what, ": not a Stable Diffusion single-file checkpoint (no tensor '", kConvIn,
           "'; a LoRA or an embedding is given with --lora / --embedding, see `kakusan inspect`)");
  KK_CHECK(conv_in->view.rank() == 4 && conv_in->view.shape[1] == 4, what, ": '", kConvIn, "' is ",
           conv_in->view.shape.str(), "; only 4 input channels are supported (",
           conv_in->view.rank() == 4 && conv_in->view.shape[1] == 9 ? "an inpainting checkpoint" : "not text-to-image",
           ")");
  CheckpointType type;
  const std::optional<WeightRef> to_k = file.get(kCrossAttentionKey);
  const bool v2 = to_k && to_k->view.rank() >= 1 && to_k->view.shape[to_k->view.rank() - 1] == 1024;
  type.model_type = v2 ? "v2" : "v1";
  type.default_repo = v2 ? "stabilityai/stable-diffusion-2-1" : "runwayml/stable-diffusion-v1-5";
  type.open_clip = file.get(kOpenClipKey).has_value();
  return type;
}

void refuse_pickle(const std::filesystem::path& file) {
  std::ifstream in(file, std::ios::binary);
  char head[4] = {};
  in.read(head, sizeof head);
  const bool zip = head[0] == 'P' && head[1] == 'K' && head[2] == 3 && head[3] == 4;
  const bool pickle = static_cast<unsigned char>(head[0]) == 0x80 && head[1] >= 2 && head[1] <= 5;
  const std::string ext = file.extension().string();
  if (!zip && !pickle && ext != ".ckpt" && ext != ".pt" && ext != ".pth" && ext != ".bin") return;
  fail(file.string(), ": a pickle checkpoint; kakusan reads only .safetensors (loading a pickle can run code from "
       "the file). Convert it once where torch is installed: python -c \"import torch, safetensors.torch as st; "
       "d = torch.load('IN.ckpt', map_location='cpu', weights_only=True); "
       "st.save_file({k: v.contiguous() for k, v in d.get('state_dict', d).items()}, 'OUT.safetensors')\"");
}

SingleFileCheckpoint SingleFileCheckpoint::open(const std::filesystem::path& file, const SingleFileOptions& options) {
  refuse_pickle(file);
  SingleFileCheckpoint ckpt;
  ckpt.file_ = file;
  ckpt.config_option_ = options.config;
  ckpt.tokenizer_option_ = options.tokenizer;
  ckpt.store_ = std::make_shared<const WeightStore>(WeightStore::open({file}));
  ckpt.type_ = detect_checkpoint_type(*ckpt.store_);
  JsonConfig unet, vae, text_encoder;
  if (options.config) {
    const ModelFolder folder = ModelFolder::open(resolve_model_path(*options.config));
    unet = folder.load_config("unet");
    vae = folder.load_config("vae");
    text_encoder = folder.load_config("text_encoder");
    ckpt.scheduler_config_ = folder.load_config("scheduler");
    ckpt.scheduler_class_ = folder.component("scheduler").class_name;
  } else {
    const char* name = builtin_config_name(ckpt.type_.model_type);
    const RandomModelSpec spec = RandomModelSpec::builtin(name);
    const std::string source = str_cat("kakusan's built-in ", ckpt.type_.default_repo, " config");
    unet = JsonConfig(spec.unet, source + " (unet)");
    vae = JsonConfig(spec.vae, source + " (vae)");
    text_encoder = JsonConfig(spec.text_encoder, source + " (text_encoder)");
    ckpt.scheduler_config_ = JsonConfig(spec.scheduler, source + " (scheduler)");
    ckpt.scheduler_class_ = spec.model_index.at("scheduler").at(1).get<std::string>();
  }
  const std::shared_ptr<const WeightSource> base = ckpt.store_;
  ckpt.unet_ = {unet, renamed(base, ldm_unet_layout())};
  ckpt.vae_ = {vae, renamed(base, ldm_vae_layout())};
  ckpt.text_encoder_ = {text_encoder, ckpt.type_.open_clip ? open_clip_text_encoder(base, text_encoder)
                                                           : renamed(base, ldm_clip_layout())};
  return ckpt;
}

std::filesystem::path SingleFileCheckpoint::tokenizer_dir() const {
  auto has_vocab = [](const std::filesystem::path& dir) {
    return std::filesystem::is_regular_file(dir / "vocab.json") && std::filesystem::is_regular_file(dir / "merges.txt");
  };
  if (tokenizer_option_) {
    const std::filesystem::path dir = resolve_model_path(*tokenizer_option_);
    if (has_vocab(dir)) return dir;
    if (has_vocab(dir / "tokenizer")) return dir / "tokenizer";
    fail("--tokenizer ", *tokenizer_option_, ": ", dir.string(), " has no vocab.json and merges.txt (nor tokenizer/)");
  }
  if (config_option_) return ModelFolder::open(resolve_model_path(*config_option_)).component_dir("tokenizer");
  // As diffusers offline: the default repo's tokenizer/, then (SD 1.x) the CLIP repo itself.
  std::vector<std::pair<std::string, std::string>> candidates = {{type_.default_repo, "tokenizer"}};
  if (type_.model_type == "v1") candidates.push_back({"openai/clip-vit-large-patch14", ""});
  std::string looked;
  for (const auto& [repo, sub] : candidates) {
    try {
      const std::filesystem::path dir = resolve_model_path(repo) / sub;
      if (has_vocab(dir)) return dir;
      looked += str_cat(" ", dir.string(), " (no vocab.json/merges.txt);");
    } catch (const Error&) {
      looked += str_cat(" ", repo, " (not in ", hf_hub_cache_dir().string(), ");");
    }
  }
  fail(file_.string(), ": a single file holds no tokenizer, and none was found:", looked,
       " pass --tokenizer DIR or --config DIR, or fetch it: huggingface-cli download ", type_.default_repo,
       " --include 'tokenizer/*'");
}

}  // namespace kakusan
