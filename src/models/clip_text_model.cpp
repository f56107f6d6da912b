#include "models/clip_text_model.h"

#include <cmath>

#include "models/model_folder_load.h"

namespace kakusan {

ClipAttention::ClipAttention(int64_t hidden_size, int num_heads)
    : hidden(hidden_size),
      heads(num_heads),
      q_proj(hidden_size, hidden_size),
      k_proj(hidden_size, hidden_size),
      v_proj(hidden_size, hidden_size),
      out_proj(hidden_size, hidden_size) {}

void ClipAttention::visit(WeightVisitor& v) {
  v.child("k_proj", k_proj);
  v.child("v_proj", v_proj);
  v.child("q_proj", q_proj);
  v.child("out_proj", out_proj);
}

void ClipAttention::forward(Context& ctx, const TensorView& x, const TensorView& y) const {
  Backend& be = ctx.backend;
  ArenaScope scope(ctx.arena);
  TensorView q = ctx.arena.alloc(x.shape);
  TensorView k = ctx.arena.alloc(x.shape);
  TensorView v = ctx.arena.alloc(x.shape);
  q_proj.forward(be, x, q);
  k_proj.forward(be, x, k);
  v_proj.forward(be, x, v);
  AttentionParams params = ctx.attention;
  params.heads = heads;
  // transformers scales q by head_dim^-0.5 before q·kᵀ; scaling the product is the same up to rounding.
  params.scale = float(1.0 / std::sqrt(double(hidden / heads)));
  params.causal = true;
  TensorView attended = ctx.arena.alloc(x.shape);
  be.attention(q, k, v, params, attended);
  out_proj.forward(be, attended, y);
}

void ClipMlp::forward(Context& ctx, const TensorView& x, const TensorView& y) const {
  ArenaScope scope(ctx.arena);
  const int64_t rows = x.numel() / fc1.in;
  TensorView hidden = ctx.arena.alloc({rows, fc1.out});
  fc1.forward(ctx.backend, x.reshape({rows, fc1.in}), hidden);
  ctx.backend.activation(hidden, act, hidden);
  fc2.forward(ctx.backend, hidden, y.reshape({rows, fc2.out}));
}

ClipEncoderLayer::ClipEncoderLayer(const ClipTextConfig& c)
    : self_attn(c.hidden_size, c.num_attention_heads),
      layer_norm1(c.hidden_size, c.layer_norm_eps),
      mlp(c.hidden_size, c.intermediate_size, c.activation()),
      layer_norm2(c.hidden_size, c.layer_norm_eps) {}

void ClipEncoderLayer::visit(WeightVisitor& v) {
  v.child("self_attn", self_attn);
  v.child("layer_norm1", layer_norm1);
  v.child("mlp", mlp);
  v.child("layer_norm2", layer_norm2);
}

void ClipEncoderLayer::forward(Context& ctx, const TensorView& x) const {
  Backend& be = ctx.backend;
  ArenaScope scope(ctx.arena);
  TensorView normed = ctx.arena.alloc(x.shape);
  TensorView delta = ctx.arena.alloc(x.shape);
  layer_norm1.forward(be, x, normed);
  self_attn.forward(ctx, normed, delta);
  be.add(x, delta, x);
  layer_norm2.forward(be, x, normed);
  mlp.forward(ctx, normed, delta);
  be.add(x, delta, x);
}

void ClipTextEmbeddings::forward(Backend& be, const TensorView& input_ids, const TensorView& y) const {
  const int64_t batch = input_ids.dim(0), length = input_ids.dim(1);
  for (int64_t b = 0; b < batch; ++b) {
    for (int64_t t = 0; t < length; ++t) {
      const int64_t id = input_ids.i64()[b * input_ids.strides[0] + t * input_ids.strides[1]];
      KK_CHECK(id >= 0 && id < vocab_size, "CLIPTextModel: input_ids[", b, ", ", t, "] = ", id,
               " is outside the vocabulary [0, ", vocab_size, ")");
      convert_into(token_embedding.view()[id], y[b][t]);
    }
  }
  // Positions 0 .. T-1 are the same for every sequence: gather them once, add them to each.
  Tensor positions = Tensor::empty({length, hidden});
  convert_into(position_embedding.view().slice0(0, length), positions);
  for (int64_t b = 0; b < batch; ++b) be.add(y[b], positions, y[b]);
}

ClipTextModel::ClipTextModel(const ClipTextConfig& config)
    : config_(config), embeddings(config), final_layer_norm(config.hidden_size, config.layer_norm_eps) {
  layers.reserve(size_t(config.num_hidden_layers));
  for (int i = 0; i < config.num_hidden_layers; ++i) layers.emplace_back(config);
}

ClipTextModel ClipTextModel::load(const std::filesystem::path& dir, DType weight_dtype, const std::string& variant) {
  return load_model_folder<ClipTextModel, ClipTextConfig>(dir, weight_dtype, variant, "transformers", "CLIPTextModel");
}

void ClipTextModel::visit(WeightVisitor& v) {
  // transformers' CLIPTextModel wraps everything in `text_model` (a CLIPTextTransformer).
  struct TextTransformer {
    ClipTextModel& m;
    void visit(WeightVisitor& v) {
      v.child("embeddings", m.embeddings);
      struct Encoder {
        std::vector<ClipEncoderLayer>& layers;
        void visit(WeightVisitor& v) { v.children("layers", layers); }
      } encoder{m.layers};
      v.child("encoder", encoder);
      v.child("final_layer_norm", m.final_layer_norm);
    }
  } text_model{*this};
  v.child("text_model", text_model);
}

Tensor ClipTextModel::forward(Context& ctx, const TensorView& input_ids, int clip_skip,
                              std::vector<Tensor>* hidden_states) const {
  check_compute_dtype(ctx, "CLIPTextModel");
  KK_CHECK(input_ids.dtype == DType::I64 && input_ids.rank() == 2, "CLIPTextModel: input_ids must be int64 [batch, ",
           "length], got ", dtype_name(input_ids.dtype), " ", input_ids.shape.str());
  const int64_t batch = input_ids.dim(0), length = input_ids.dim(1);
  KK_CHECK(batch > 0 && length > 0 && length <= config_.max_position_embeddings, "CLIPTextModel: input_ids ",
           input_ids.shape.str(), " must have 1 to ", config_.max_position_embeddings, " tokens per sequence");
  const int num_layers = int(layers.size());
  KK_CHECK(clip_skip >= 0 && clip_skip <= num_layers, "clip_skip ", clip_skip,
           " is out of range: the text encoder has ", num_layers, " layers (0 to ", num_layers, " can be skipped)");

  ArenaScope scope(ctx.arena);
  const Shape shape{batch, length, config_.hidden_size};
  TensorView hidden = ctx.arena.alloc(shape);
  embeddings.forward(ctx.backend, input_ids, hidden);
  if (hidden_states != nullptr) {
    hidden_states->clear();
    hidden_states->push_back(Tensor::copy_of(hidden));
  }
  // Without hidden_states, layers whose output clip_skip discards are not run.
  const int layers_to_run = hidden_states != nullptr ? num_layers : num_layers - clip_skip;
  TensorView selected = hidden;
  for (int i = 0; i < layers_to_run; ++i) {
    layers[size_t(i)].forward(ctx, hidden);
    if (hidden_states != nullptr) hidden_states->push_back(Tensor::copy_of(hidden));
  }
  if (hidden_states != nullptr) selected = (*hidden_states)[size_t(num_layers - clip_skip)];

  Tensor out = Tensor::empty(shape);
  final_layer_norm.forward(ctx.backend, selected, out);
  return out;
}

Tensor ClipTextModel::pooled_output(const TensorView& input_ids, const TensorView& last_hidden_state) const {
  KK_CHECK(input_ids.dtype == DType::I64 && input_ids.rank() == 2, "pooled_output: input_ids must be int64 [B, T]");
  const int64_t batch = input_ids.dim(0), length = input_ids.dim(1), hidden = config_.hidden_size;
  KK_CHECK(last_hidden_state.shape == Shape({batch, length, hidden}), "pooled_output: last_hidden_state ",
           last_hidden_state.shape.str(), " does not match input_ids ", input_ids.shape.str());
  Tensor out = Tensor::empty({batch, hidden});
  for (int64_t b = 0; b < batch; ++b) {
    const Tensor ids = Tensor::copy_of(input_ids[b]);
    int64_t position = 0;
    for (int64_t t = 0; t < length; ++t) {
      // Both rules take the first position that qualifies (torch.argmax returns the first maximum).
      if (config_.eos_token_id == 2 ? ids.i64()[t] > ids.i64()[position] : ids.i64()[t] == config_.eos_token_id) {
        position = t;
        if (config_.eos_token_id != 2) break;
      }
    }
    convert_into(last_hidden_state[b][position], out.view()[b]);
  }
  return out;
}

}  // namespace kakusan
