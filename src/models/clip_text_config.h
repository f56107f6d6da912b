// CLIPTextConfig (transformers v4.40 models/clip/configuration_clip.py) as text_encoder/config.json stores
// it: the same field names and defaults. Only the fields that shape CLIPTextModel's forward pass are kept.
#pragma once

#include <cstdint>
#include <string>

#include "backend/backend.h"
#include "io/json_config.h"

namespace kakusan {

struct ClipTextConfig {
  int64_t vocab_size = 49408;
  int64_t hidden_size = 512;
  int64_t intermediate_size = 2048;
  int num_hidden_layers = 12;
  int num_attention_heads = 8;
  int64_t max_position_embeddings = 77;
  std::string hidden_act = "quick_gelu";
  float layer_norm_eps = 1e-5f;
  // Only pooled_output() reads it: the legacy value 2 (most SD checkpoints) means "pool at argmax(input_ids)".
  int64_t eos_token_id = 49407;

  // Reads and validates a config (a CLIPTextConfig, or a full CLIPConfig whose "text_config" is used);
  // throws Error naming the file and key.
  static ClipTextConfig parse(const JsonConfig& json);

  int64_t head_dim() const { return hidden_size / num_attention_heads; }
  // hidden_act as a backend activation (quick_gelu, gelu = exact erf, gelu_new / gelu_pytorch_tanh = tanh).
  Activation activation() const;
};

}  // namespace kakusan
