// CLIPTextModel (transformers v4.40 models/clip/modeling_clip.py) as StableDiffusionPipeline.encode_prompt
// uses it: token + position embeddings, pre-LayerNorm transformer layers with causal self-attention (no
// padding mask: the pipeline passes none, so padding tokens are ordinary inputs), final LayerNorm.
//
//   ClipTextModel text_encoder = ClipTextModel::load(model_dir / "text_encoder");
//   Context ctx{cpu_backend(), arena, {}};
//   Tensor prompt_embeds = text_encoder.forward(ctx, input_ids);   // [B, 77] i64 -> [B, 77, hidden_size]
//
// Parameters carry the checkpoint's names (text_model.embeddings.token_embedding.weight,
// text_model.encoder.layers.0.self_attn.q_proj.weight, ..., text_model.final_layer_norm.bias).
#pragma once

#include <filesystem>
#include <string>
#include <vector>

#include "models/clip_text_config.h"
#include "nn/context.h"
#include "nn/layers.h"

namespace kakusan {

// Multi-head causal self-attention: q/k/v projections, softmax(q·kᵀ / sqrt(head_dim), causal)·v, out_proj.
struct ClipAttention {
  int64_t hidden = 0;
  int heads = 1;
  Linear q_proj, k_proj, v_proj, out_proj;

  ClipAttention() = default;
  ClipAttention(int64_t hidden_size, int num_heads);

  void visit(WeightVisitor& v);
  // x [B, T, hidden] -> y [B, T, hidden] (distinct from x).
  void forward(Context& ctx, const TensorView& x, const TensorView& y) const;
};

// fc1 -> hidden_act -> fc2.
struct ClipMlp {
  Activation act = Activation::QuickGELU;
  Linear fc1, fc2;

  ClipMlp() = default;
  ClipMlp(int64_t hidden_size, int64_t intermediate_size, Activation activation)
      : act(activation), fc1(hidden_size, intermediate_size), fc2(intermediate_size, hidden_size) {}

  void visit(WeightVisitor& v) {
    v.child("fc1", fc1);
    v.child("fc2", fc2);
  }
  void forward(Context& ctx, const TensorView& x, const TensorView& y) const;
};

// x += self_attn(layer_norm1(x)); x += mlp(layer_norm2(x)).
struct ClipEncoderLayer {
  ClipAttention self_attn;
  LayerNorm layer_norm1;
  ClipMlp mlp;
  LayerNorm layer_norm2;

  ClipEncoderLayer() = default;
  explicit ClipEncoderLayer(const ClipTextConfig& c);

  void visit(WeightVisitor& v);
  // Updates x [B, T, hidden] in place.
  void forward(Context& ctx, const TensorView& x) const;
};

// token_embedding(input_ids) + position_embedding(0 .. T-1). Both tables may be f16/bf16 (rows are
// converted to f32 as they are gathered).
struct ClipTextEmbeddings {
  int64_t vocab_size = 0, hidden = 0, max_positions = 0;
  Tensor token_embedding, position_embedding;

  ClipTextEmbeddings() = default;
  explicit ClipTextEmbeddings(const ClipTextConfig& c)
      : vocab_size(c.vocab_size), hidden(c.hidden_size), max_positions(c.max_position_embeddings) {}

  void visit(WeightVisitor& v) {
    v("token_embedding.weight", token_embedding, {vocab_size, hidden});
    v("position_embedding.weight", position_embedding, {max_positions, hidden});
  }
  // input_ids [B, T] i64 (checked by the backend's embedding op) -> y [B, T, hidden].
  void forward(Backend& be, const TensorView& input_ids, const TensorView& y) const;
};

class ClipTextModel {
 public:
  explicit ClipTextModel(const ClipTextConfig& config);
  // Reads <dir>/config.json and the weights beside it (model.safetensors, a `variant` such as "fp16", or a
  // sharded checkpoint); weight matrices are kept in `weight_dtype`, vectors in f32. Throws Error listing
  // every missing, unexpected or mis-shaped tensor.
  static ClipTextModel load(const std::filesystem::path& dir, DType weight_dtype = DType::F32,
                            const std::string& variant = "");

  const ClipTextConfig& config() const { return config_; }
  void visit(WeightVisitor& v);

  // input_ids [B, T] i64 (T <= max_position_embeddings) -> [B, T, hidden_size]:
  // final_layer_norm(hidden_states[-(clip_skip + 1)]), so clip_skip 0 is last_hidden_state and clip_skip k
  // is diffusers' encode_prompt(clip_skip=k) (the last k layers are then not run). With `hidden_states`,
  // also returns transformers' output_hidden_states: num_hidden_layers + 1 tensors [B, T, hidden_size]
  // (0 = embeddings, i = output of layer i, no final LayerNorm), running every layer.
  Tensor forward(Context& ctx, const TensorView& input_ids, int clip_skip = 0,
                 std::vector<Tensor>* hidden_states = nullptr) const;

  // CLIPTextTransformer's pooler_output [B, hidden_size]: last_hidden_state at the eos position, found as
  // transformers does (argmax(input_ids) for the legacy eos_token_id 2, else the first eos_token_id).
  // Not used by Stable Diffusion; kept for completeness and checked against the golden kit. input_ids may
  // be host memory or `be`'s; last_hidden_state and the result are `be`'s.
  Tensor pooled_output(Backend& be, const TensorView& input_ids, const TensorView& last_hidden_state) const;

 private:
  ClipTextConfig config_;
  ClipTextEmbeddings embeddings;
  std::vector<ClipEncoderLayer> layers;
  LayerNorm final_layer_norm;
};

}  // namespace kakusan
