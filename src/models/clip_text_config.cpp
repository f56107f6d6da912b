#include "models/clip_text_config.h"

#include "models/config_checks.h"

namespace kakusan {

namespace {

constexpr int64_t kMaxVocabSize = 1'000'000;
constexpr int64_t kMaxLayers = 256;

// transformers' ACT2FN names this model may use, and the backend activation computing the same function.
bool activation_for(const std::string& name, Activation& out) {
  if (name == "quick_gelu") return out = Activation::QuickGELU, true;
  if (name == "gelu") return out = Activation::GELU, true;
  if (name == "gelu_new" || name == "gelu_pytorch_tanh") return out = Activation::GELUTanh, true;
  return false;
}

}  // namespace

ClipTextConfig ClipTextConfig::parse(const JsonConfig& file) {
  JsonConfig json = file;
  // A CLIPConfig (model_type "clip") nests the text model's settings under "text_config".
  if (file.get<std::string>("model_type", "") == "clip" && file.has("text_config")) {
    KK_CHECK(file.json()["text_config"].is_object(), file.source(), ": \"text_config\" should be an object");
    json = JsonConfig(file.json()["text_config"], file.source() + " (text_config)");
  }
  ClipTextConfig c;
  c.vocab_size = json.get<int64_t>("vocab_size", c.vocab_size);
  c.hidden_size = json.get<int64_t>("hidden_size", c.hidden_size);
  c.intermediate_size = json.get<int64_t>("intermediate_size", c.intermediate_size);
  c.num_hidden_layers = json.get<int>("num_hidden_layers", c.num_hidden_layers);
  c.num_attention_heads = json.get<int>("num_attention_heads", c.num_attention_heads);
  c.max_position_embeddings = json.get<int64_t>("max_position_embeddings", c.max_position_embeddings);
  c.hidden_act = json.get<std::string>("hidden_act", c.hidden_act);
  c.layer_norm_eps = json.get<float>("layer_norm_eps", c.layer_norm_eps);
  c.eos_token_id = json.get<int64_t>("eos_token_id", c.eos_token_id);

  const std::string& src = json.source();
  // Bounds far above real text encoders (CLIP ViT-bigG: 1280 wide, 32 layers, 49408 tokens): the model is
  // built from this config before any weight is read.
  using config_checks::in_range;
  in_range(src, "vocab_size", c.vocab_size, 1, kMaxVocabSize);
  in_range(src, "hidden_size", c.hidden_size, 1, config_checks::kMaxChannels);
  in_range(src, "intermediate_size", c.intermediate_size, 1, 4 * config_checks::kMaxChannels);
  in_range(src, "num_hidden_layers", c.num_hidden_layers, 1, kMaxLayers);
  in_range(src, "max_position_embeddings", c.max_position_embeddings, 1, config_checks::kMaxChannels);
  in_range(src, "num_attention_heads", c.num_attention_heads, 1, c.hidden_size);
  KK_CHECK(c.hidden_size % c.num_attention_heads == 0, src, ": hidden_size (", c.hidden_size,
           ") must be divisible by num_attention_heads (", c.num_attention_heads, ")");
  KK_CHECK(c.layer_norm_eps > 0, src, ": layer_norm_eps must be positive (got ", c.layer_norm_eps, ")");
  Activation unused;
  KK_CHECK(activation_for(c.hidden_act, unused), src, ": hidden_act \"", c.hidden_act,
           "\" is not supported (expected quick_gelu, gelu, gelu_new or gelu_pytorch_tanh)");
  return c;
}

Activation ClipTextConfig::activation() const {
  Activation act = Activation::QuickGELU;
  const bool known = activation_for(hidden_act, act);
  KK_ASSERT(known);  // parse() accepted only known names
  return act;
}

}  // namespace kakusan
